"""Metric functions against hand-computed values (the arithmetic is in the comments)."""

import numpy as np
import pytest

from gptground.eval.metrics import (
    box_iou,
    normalize_phrase,
    phrase_grounding_recall,
    rec_accuracy,
    span_iou,
    temporal_grounding,
)
from gptground.grounding.types import Box, Span


class TestBoxIou:
    def test_identical_boxes(self):
        assert box_iou(Box(3, 4, 30, 40), Box(3, 4, 30, 40)) == 1.0

    def test_partial_overlap(self):
        # overlap 5 x 5 = 25; union 100 + 100 - 25 = 175
        assert box_iou(Box(0, 0, 10, 10), Box(5, 5, 15, 15)) == pytest.approx(25 / 175)

    def test_no_plus_one_pixel_convention(self):
        # overlap 10 x 10 = 100; union 100 + 200 - 100 = 200 -> 0.5
        # (the +1 convention would give 11*11 / (121 + 231 - 121) = 121/231 = 0.5238)
        assert box_iou(Box(0, 0, 10, 10), Box(0, 0, 10, 20)) == 0.5

    def test_touching_and_disjoint_boxes(self):
        assert box_iou(Box(0, 0, 10, 10), Box(10, 0, 20, 10)) == 0.0
        assert box_iou(Box(0, 0, 10, 10), Box(50, 50, 60, 60)) == 0.0

    def test_boxes_apart_on_one_axis_only_have_zero_iou(self):
        # x overlaps by 5 but y is 10 apart: without max(0, ...) on y the "intersection"
        # would be 5 * -10 = -50 and the IoU negative; likewise with the axes swapped.
        assert box_iou(Box(0, 0, 10, 10), Box(5, 20, 15, 30)) == 0.0
        assert box_iou(Box(0, 0, 10, 10), Box(20, 5, 30, 15)) == 0.0
        assert box_iou(Box(5, 20, 15, 30), Box(0, 0, 10, 10)) == 0.0

    def test_boxes_touching_on_one_edge_only_have_zero_iou(self):
        assert box_iou(Box(0, 0, 10, 10), Box(0, 10, 10, 20)) == 0.0  # shared bottom edge
        assert box_iou(Box(0, 0, 10, 10), Box(3, 10, 7, 20)) == 0.0
        assert box_iou(Box(0, 0, 10, 10), Box(10, 10, 20, 20)) == 0.0  # shared corner

    def test_matches_counting_grid_cells(self):
        # Integer boxes on a 12 x 12 grid: IoU = cells in both / cells in either, counted.
        rng = np.random.default_rng(0)
        for _ in range(400):
            a, b = (Box(*_sorted_corners(rng)) for _ in range(2))
            in_a, in_b = _cells(a), _cells(b)
            union = (in_a | in_b).sum()
            expected = (in_a & in_b).sum() / union if union else 0.0
            assert box_iou(a, b) == pytest.approx(expected), (a, b)

    def test_reversed_box_overlaps_nothing(self):
        assert box_iou(Box(10, 10, 0, 0), Box(0, 0, 10, 10)) == 0.0

    def test_two_zero_area_boxes(self):
        assert box_iou(Box(5, 5, 5, 5), Box(5, 5, 5, 5)) == 0.0

    def test_symmetric(self):
        a, b = Box(0, 0, 10, 10), Box(2, 3, 17, 9)
        assert box_iou(a, b) == box_iou(b, a)


class TestSpanIou:
    def test_partial_overlap(self):
        # overlap [5, 10] = 5 s; union [0, 15] = 15 s
        assert span_iou(Span(0, 10), Span(5, 15)) == pytest.approx(1 / 3)

    def test_reversed_span_is_swapped(self):
        assert span_iou(Span(10, 0), Span(5, 15)) == pytest.approx(1 / 3)
        assert span_iou(Span(5, 15), Span(10, 0)) == pytest.approx(1 / 3)

    def test_disjoint_and_zero_length(self):
        assert span_iou(Span(0, 5), Span(6, 10)) == 0.0
        assert span_iou(Span(5, 5), Span(0, 10)) == 0.0
        assert span_iou(Span(5, 5), Span(5, 5)) == 0.0

    def test_scale_free(self):
        # the same pair in seconds of a 30 s clip and as fractions of it
        seconds = span_iou(Span(3, 12), Span(6, 21))
        fractions = span_iou(Span(0.1, 0.4), Span(0.2, 0.7))
        # overlap [6, 12] = 6; union [3, 21] = 18 -> 1/3
        assert seconds == pytest.approx(1 / 3)
        assert fractions == pytest.approx(seconds)


class TestRecAccuracy:
    def test_protocol_rules(self):
        predictions = [
            [Box(0, 0, 10, 10)],  # IoU exactly 0.5 with its truth: a hit (>=, not >)
            [Box(0, 0, 10, 10), Box(100, 100, 110, 110)],  # only the FIRST box counts: miss
            None,  # unparseable: wrong, and a parse failure
            [],  # nothing parsed: same as None
            [Box(5, 5, 15, 15)],  # IoU 25/175 = 0.143: miss
            [Box(0, 0, 10, 10)],  # exact: hit
        ]
        truths = [
            Box(0, 0, 10, 20),
            Box(100, 100, 110, 110),
            Box(0, 0, 10, 10),
            Box(0, 0, 10, 10),
            Box(0, 0, 10, 10),
            Box(0, 0, 10, 10),
        ]
        # 2 hits / 6 expressions (failures stay in the denominator)
        assert rec_accuracy(predictions, truths) == {
            "acc@0.5": pytest.approx(2 / 6),
            "n": 6,
            "parse_failures": 2,
        }

    def test_several_truth_boxes_best_match_counts(self):
        truths = [[Box(50, 50, 60, 60), Box(0, 0, 10, 10)]]
        assert rec_accuracy([[Box(0, 0, 10, 10)]], truths)["acc@0.5"] == 1.0

    def test_threshold_names_the_key(self):
        # IoU 25/175 = 0.143 >= 0.1
        result = rec_accuracy([[Box(5, 5, 15, 15)]], [Box(0, 0, 10, 10)], threshold=0.1)
        assert result["acc@0.1"] == 1.0

    def test_bad_pairing_raises(self):
        with pytest.raises(ValueError, match="paired"):
            rec_accuracy([None], [Box(0, 0, 1, 1), Box(0, 0, 1, 1)])
        with pytest.raises(ValueError, match="no samples"):
            rec_accuracy([], [])
        with pytest.raises(ValueError, match="sample 0 has no ground truth"):
            rec_accuracy([None], [[]])


class TestTemporalGrounding:
    def test_protocol_rules(self):
        predictions = [
            [Span(0, 10)],  # truth [5, 15]: IoU 5/15 = 0.333
            [Span(20, 10)],  # reversed, swapped to [10, 20] = truth: IoU 1
            None,  # unparseable: IoU 0
            [Span(0, 10), Span(40, 50)],  # top-1 only: [0, 10] vs [40, 50] = 0
            [Span(0, 8)],  # best of two truths: [0, 10] gives 8/10 = 0.8
            [Span(0, 6)],  # truth [0, 10]: 6/10 = 0.6
        ]
        truths = [
            [Span(5, 15)],
            [Span(10, 20)],
            [Span(0, 10)],
            [Span(40, 50)],
            [Span(20, 30), Span(0, 10)],
            [Span(0, 10)],
        ]
        result = temporal_grounding(predictions, truths)
        # IoUs 0.333, 1, 0, 0, 0.8, 0.6
        assert result["r1@0.3"] == pytest.approx(4 / 6)  # 0.333, 1, 0.8, 0.6
        assert result["r1@0.5"] == pytest.approx(3 / 6)  # 1, 0.8, 0.6
        assert result["r1@0.7"] == pytest.approx(2 / 6)  # 1, 0.8
        # (1/3 + 1 + 0 + 0 + 0.8 + 0.6) / 6 = 2.7333 / 6 = 0.45556
        assert result["miou"] == pytest.approx((1 / 3 + 1 + 0.8 + 0.6) / 6)
        assert result["n"] == 6
        assert result["parse_failures"] == 1

    def test_threshold_is_inclusive(self):
        # [0, 5] vs [0, 10]: 5/10 = 0.5 exactly
        result = temporal_grounding([[Span(0, 5)]], [[Span(0, 10)]])
        assert result["r1@0.5"] == 1.0
        assert result["r1@0.7"] == 0.0

    def test_empty_prediction_list_is_a_failure(self):
        result = temporal_grounding([[]], [[Span(0, 10)]])
        assert result["miou"] == 0.0
        assert result["parse_failures"] == 1

    def test_query_without_truth_raises(self):
        with pytest.raises(ValueError, match="sample 1 has no ground truth"):
            temporal_grounding([None, None], [[Span(0, 1)], []])


class TestPhraseGroundingRecall:
    def test_any_box_protocol(self):
        truths = [
            [
                ("A man", [Box(0, 0, 10, 10)]),
                ("a red hat", [Box(0, 0, 4, 4), Box(20, 20, 30, 30)]),
                ("the scene", []),  # no box: not a trial
            ],
            [("a dog", [Box(0, 0, 10, 10)]), ("a ball", [Box(50, 50, 60, 60)])],
            [("Two women", [Box(0, 0, 10, 10)])],
            [("a boy", [Box(0, 0, 10, 10)])],
            [("shaggy hair", [Box(0, 0, 10, 10)]), ("a red shirt", [Box(50, 50, 60, 60)])],
        ]
        predictions = [
            [
                # "the man" matches "A man"; IoU 100/200 = 0.5: recalled
                ("the man", [Box(0, 0, 10, 20)]),
                # vs the 2nd truth box: 9*9=81 / (100+81-81) = 0.81: recalled (any box).
                # The merged-box protocol would compare with [0,0,30,30]: 81/900 = 0.09.
                ("red hat", [Box(21, 21, 30, 30)]),
            ],
            # boxes swapped between the phrases: both missed; "a cat" is not a trial
            [
                ("a dog", [Box(50, 50, 60, 60)]),
                ("a ball", [Box(0, 0, 10, 10)]),
                ("a cat", [Box(0, 0, 10, 10)]),
            ],
            None,  # unparseable: its phrase is missed
            # two mentions of "a boy" are pooled; the second box hits
            [("a boy", [Box(100, 100, 110, 110)]), ("A boy.", [Box(0, 0, 10, 10)])],
            # the parser's phrase may carry leading words: "with shaggy hair" ends with
            # "shaggy hair": recalled; "shirt" is shorter than "red shirt": not a match
            [("with shaggy hair", [Box(0, 0, 10, 10)]), ("shirt", [Box(50, 50, 60, 60)])],
        ]
        # trials 2 + 2 + 1 + 1 + 2 = 8; recalled 2 + 0 + 0 + 1 + 1 = 4 -> 0.5
        assert phrase_grounding_recall(predictions, truths) == {
            "recall@0.5": 0.5,
            "n": 8,
            "parse_failures": 1,
        }

    def test_no_trials_raises(self):
        with pytest.raises(ValueError, match="no ground-truth phrase has a box"):
            phrase_grounding_recall([None], [[("the sky", [])]])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A Man,", "man"),
        ("an apple pie!", "apple pie"),
        ("  the   red\that ", "red hat"),
        ("the", "the"),
        ("...", ""),
    ],
)
def test_normalize_phrase(text, expected):
    assert normalize_phrase(text) == expected


def _sorted_corners(rng) -> tuple[int, int, int, int]:
    """x1 <= x2, y1 <= y2 on a 12-cell grid (zero width or height allowed)."""
    x1, x2 = sorted(rng.integers(0, 13, size=2))
    y1, y2 = sorted(rng.integers(0, 13, size=2))
    return int(x1), int(y1), int(x2), int(y2)


def _cells(box: Box) -> np.ndarray:
    """(12, 12) bool: the unit cells [x, x+1) x [y, y+1) that ``box`` covers."""
    grid = np.zeros((12, 12), dtype=bool)
    grid[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)] = True
    return grid
