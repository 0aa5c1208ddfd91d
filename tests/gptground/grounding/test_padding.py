"""Square padding maths (LLaVA's expand2square) and unpadded unit conversion."""

import pytest

from gptground.grounding import Box, from_padded_unit, from_unit, padding_offset, square_side, to_padded_unit, to_unit


def test_wide_image_is_padded_top_and_bottom():
    assert square_side((1000, 7)) == 1000
    assert padding_offset((1000, 7)) == (0, 496)  # (1000 - 7) // 2: the odd pixel goes below


def test_tall_image_is_padded_left_and_right():
    assert padding_offset((300, 500)) == (100, 0)


def test_square_image_has_no_padding():
    assert padding_offset((640, 640)) == (0, 0)
    assert to_padded_unit(Box(64, 128, 320, 640), (640, 640)) == (0.1, 0.2, 0.5, 1.0)


def test_full_image_on_padded_square():
    x1, y1, x2, y2 = to_padded_unit(Box(0, 0, 1000, 500), (1000, 500))
    assert (x1, x2) == (0.0, 1.0)
    assert (y1, y2) == (0.25, 0.75)


@pytest.mark.parametrize("size", [(1000, 7), (7, 1000), (333, 777), (640, 480), (1, 1)])
def test_padded_round_trip_is_exact_up_to_float(size):
    box = Box(0.25 * size[0], 0.5 * size[1], 0.75 * size[0], size[1])
    back = from_padded_unit(to_padded_unit(box, size), size)
    assert back.as_list() == pytest.approx(box.as_list(), abs=1e-9)


def test_from_padded_unit_does_not_clip_boxes_in_the_padding():
    # (1000, 500): the image occupies y in [0.25, 0.75] of the square.
    box = from_padded_unit((0.0, 0.0, 1.0, 0.1), (1000, 500))
    assert box.y1 == -250 and box.y2 == -150


def test_unpadded_unit_uses_width_and_height():
    assert to_unit(Box(100, 50, 200, 100), (400, 100)) == (0.25, 0.5, 0.5, 1.0)
    assert from_unit((0.25, 0.5, 0.5, 1.0), (400, 100)) == Box(100, 50, 200, 100)
