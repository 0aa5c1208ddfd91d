"""Phrase grounding recall on grounded captions parsed from model text (500 x 333 image)."""

from gptground.eval.metrics import phrase_grounding_recall
from gptground.grounding import parse
from gptground.grounding.types import Box

SIZE = (500, 333)  # S = 500, dy = (500 - 333) // 2 = 83


def phrase_pairs(text):
    return [(p.phrase or "", p.boxes) for p in parse(text, image_size=SIZE).phrases]


def test_grounded_captions():
    answers = [
        # [0.000, 0.166, 0.198, 0.564] -> x 0, 99; y 0.166*500 - 83 = 0, 0.564*500 - 83 = 199
        # [0.100, 0.286, 0.140, 0.326] -> x 50, 70; y 143 - 83 = 60, 163 - 83 = 80
        "Two young guys [0.000, 0.166, 0.198, 0.564] with shaggy hair "
        "[0.100, 0.286, 0.140, 0.326] look at the yard .",
        # [0.600, 0.600, 0.700, 0.700] -> x 300, 350; y 217, 267: far from the hands
        "A man shows their hands [0.600, 0.600, 0.700, 0.700].",
    ]
    truths = [
        [
            ("Two young guys", [Box(0, 0, 99, 199), Box(200, 10, 299, 210)]),
            ("shaggy hair", [Box(50, 60, 70, 80)]),
            ("the yard", []),  # scene: not a trial
        ],
        [("their hands", [Box(50, 60, 70, 80)])],
    ]
    predictions = [phrase_pairs(answer) for answer in answers]
    assert predictions[0][1] == ("with shaggy hair", [Box(50, 60, 70, 80)])
    # 3 trials: guys (IoU 1), hair (IoU 1, matched through the "with ..." suffix), hands (0)
    result = phrase_grounding_recall(predictions, truths)
    assert result == {"recall@0.5": 2 / 3, "n": 3, "parse_failures": 0}
