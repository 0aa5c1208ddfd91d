"""Square padding maths (LLaVA's expand2square) and unpadded unit conversion."""

import pytest
import torch

from gptground.grounding import Box, from_padded_unit, from_unit, padding_offset, square_side, to_padded_unit, to_unit
from modalities.image import pad_to_square


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


# --- the padded pixels and the box maths agree ----------------------------------------------
@pytest.mark.parametrize("size", [(7, 4), (4, 7), (9, 2), (2, 9), (8, 5), (5, 8), (6, 6)])
def test_padded_image_content_sits_where_the_box_maths_puts_it(size):
    """pad_to_square (what the encoder sees) and to_padded_unit / from_padded_unit (what the
    text says) must put the image at the same offset, to the pixel. With an odd difference
    between width and height, the odd padding pixel goes to the bottom / right in both."""
    width, height = size
    # Every original pixel holds a distinct value (1..W*H, in row-major order): where each one
    # lands in the padded square locates the image exactly. 0 marks padding (mean colour != 0).
    ids = torch.arange(1, width * height + 1, dtype=torch.int64).reshape(height, width)
    pixels = torch.stack([ids % 256, ids // 256, torch.zeros_like(ids)]).to(torch.uint8)  # (3, H, W)
    padded = pad_to_square(pixels)
    side = max(width, height)
    assert padded.shape == (3, side, side)

    decoded = padded[0].long() + 256 * padded[1].long()
    inside = (decoded >= 1) & (decoded <= width * height) & (padded[2] == 0)
    rows, cols = torch.nonzero(inside, as_tuple=True)
    top, left = int(rows.min()), int(cols.min())
    assert (int(rows.max()) - top + 1, int(cols.max()) - left + 1) == (height, width)
    assert torch.equal(padded[:, top : top + height, left : left + width], pixels)

    # The box maths: the whole image as a box lands on exactly those pixels of the square.
    x1, y1, x2, y2 = (c * side for c in to_padded_unit(Box(0, 0, width, height), size))
    assert (x1, y1, x2, y2) == pytest.approx((left, top, left + width, top + height), abs=1e-9)
    assert padding_offset(size) == (left, top)
    # ...and back: the square's pixel (left + i, top + j) is the original's (i, j).
    back = from_padded_unit(((left + 1) / side, (top + 1) / side, (left + 2) / side, (top + 2) / side), size)
    assert back.as_list() == pytest.approx([1, 1, 2, 2], abs=1e-9)
    # The odd pixel of padding is at the bottom / right.
    assert (top, side - top - height) == ((side - height) // 2, side - height - (side - height) // 2)
    assert (left, side - left - width) == ((side - width) // 2, side - width - (side - width) // 2)
