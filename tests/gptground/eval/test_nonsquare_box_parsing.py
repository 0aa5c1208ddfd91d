"""REC protocol step 1 on NON-SQUARE images: text -> pixels of the original image.

GroundingGPT and Shikra write fractions of the padded square (side S = max(W, H), image
pasted at offset (S - W) // 2 or (S - H) // 2); MiniGPT-v2 writes integers 0-100 of W
and H with no padding. Every expected box is computed by hand in the comments.
"""

import pytest

from gptground.eval.metrics import box_iou, rec_accuracy
from gptground.grounding import parse_boxes
from gptground.grounding.types import Box


def test_landscape_groundinggpt():
    # 640 x 480: S = 640, dy = (640 - 480) // 2 = 80
    # x1 = 0.100 * 640 = 64;  y1 = 0.225 * 640 - 80 = 144 - 80 = 64
    # x2 = 0.500 * 640 = 320; y2 = 0.725 * 640 - 80 = 464 - 80 = 384
    (box,) = parse_boxes("[0.100, 0.225, 0.500, 0.725]", (640, 480))
    assert box.as_list() == pytest.approx([64, 64, 320, 384])


def test_portrait_groundinggpt():
    # 480 x 640: S = 640, dx = 80
    # x1 = 0.225 * 640 - 80 = 64; y1 = 0.100 * 640 = 64
    # x2 = 0.725 * 640 - 80 = 384; y2 = 0.500 * 640 = 320
    (box,) = parse_boxes("[0.225, 0.100, 0.725, 0.500]", (480, 640))
    assert box.as_list() == pytest.approx([64, 64, 384, 320])


def test_odd_padding_groundinggpt():
    # 500 x 333: S = 500, dy = (500 - 333) // 2 = 167 // 2 = 83 (integer division)
    # x1 = 0.2 * 500 = 100; y1 = 0.3 * 500 - 83 = 67; x2 = 0.6 * 500 = 300; y2 = 350 - 83 = 267
    (box,) = parse_boxes("[0.200, 0.300, 0.600, 0.700]", (500, 333))
    assert box.as_list() == pytest.approx([100, 67, 300, 267])


def test_shikra_same_square_convention():
    # same numbers as the landscape case, Shikra spelling (no spaces)
    (box,) = parse_boxes("[0.100,0.225,0.500,0.725]", (640, 480), fmt="shikra")
    assert box.as_list() == pytest.approx([64, 64, 320, 384])


def test_minigptv2_no_padding():
    # 640 x 480, integers 0-100 of W and H, no padding; read as bin centres (v + 0.5) / 100
    # (MiniGPT-v2's own eval script uses v / 100, the bin's lower edge: 0.5% of W lower).
    # x1 = 10.5/100 * 640 = 67.2; y1 = 20.5/100 * 480 = 98.4
    # x2 = 50.5/100 * 640 = 323.2; y2 = 70.5/100 * 480 = 338.4
    (box,) = parse_boxes("<p>the cat</p> {<10><20><50><70>}", (640, 480), fmt="minigptv2")
    assert box.as_list() == pytest.approx([67.2, 98.4, 323.2, 338.4])


def test_padding_removal_decides_the_hit():
    # Truth on a 640 x 480 image: [64, 64, 320, 128] (a thin box, 256 x 64).
    # On the padded square: y1 = (64 + 80) / 640 = 0.225, y2 = (128 + 80) / 640 = 0.325.
    truth = Box(64, 64, 320, 128)
    text = "[0.100, 0.225, 0.500, 0.325]"
    assert rec_accuracy([parse_boxes(text, (640, 480))], [truth])["acc@0.5"] == 1.0
    # Read naively as fractions of H: y1 = 0.225 * 480 = 108, y2 = 0.325 * 480 = 156;
    # overlap in y [108, 128] = 20 of union [64, 156] = 92 (x identical): IoU 20/92 = 0.217.
    naive = Box(64, 108, 320, 156)
    assert box_iou(naive, truth) == pytest.approx(20 / 92)


def test_iou_of_exactly_half_after_denormalisation_counts():
    # Truth [64, 64, 320, 384] on 640 x 480 (256 x 320 = 81920 px).
    # Predicted y2 = 0.475 * 640 - 80 = 224: box 256 x 160 = 40960 px inside the truth,
    # IoU = 40960 / 81920 = 0.5 exactly on paper; in floats 0.475 * 640 is off by an ulp.
    predicted = parse_boxes("[0.100, 0.225, 0.500, 0.475]", (640, 480))
    assert box_iou(predicted[0], Box(64, 64, 320, 384)) == pytest.approx(0.5)
    assert rec_accuracy([predicted], [Box(64, 64, 320, 384)])["acc@0.5"] == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "I cannot find it.",  # no box at all
        "[0.100, 0.225, 0.500",  # truncated output
        "[0.100, 0.225]",  # too few coordinates
    ],
)
def test_unparseable_answers_are_wrong_and_counted(text):
    predictions = [
        parse_boxes(text, (640, 480)),
        parse_boxes("[0.1, 0.225, 0.5, 0.725]", (640, 480)),
    ]
    result = rec_accuracy(predictions, [Box(64, 64, 320, 384), Box(64, 64, 320, 384)])
    # 1 hit of 2 expressions: the failure stays in the denominator
    assert result == {"acc@0.5": 0.5, "n": 2, "parse_failures": 1}
