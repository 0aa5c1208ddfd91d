"""Kosmos-2 cell maths agrees with transformers' Kosmos2Processor, used as an oracle."""

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers.models.kosmos2.processing_kosmos2 import (
    clean_text_and_extract_entities_with_bboxes,
    coordinate_to_patch_index,
    patch_index_to_coordinate,
)

from gptground.grounding import parse
from gptground.grounding.kosmos2 import patch_box, patch_indices

SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def unit_box(draw):
    """A 0-1 box with x2 > x1 and y2 > y1, as the reference requires."""
    x1, x2 = sorted(draw(st.floats(0, 1)) for _ in range(2))
    y1, y2 = sorted(draw(st.floats(0, 1)) for _ in range(2))
    assume(x1 < x2 and y1 < y2)
    # Below ~1e-16 the reference's ceil(x2 * 32 - 1) rounds to cell -1; ours clamps to 0.
    assume(x2 > 1e-12 and y2 > 1e-12)
    return x1, y1, x2, y2


@SETTINGS
@given(unit_box())
def test_writing_matches_the_reference(box):
    assert patch_indices(box) == coordinate_to_patch_index(box, 32)


def test_writing_keeps_degenerate_boxes_on_the_grid():
    assert patch_indices((0.0, 0.0, 1.0, 1e-200)) == (0, 31)  # the reference gives cell -1
    assert patch_indices((0.5, 0.5, 0.5, 0.5)) == (16 * 32 + 16, 16 * 32 + 16)
    assert patch_indices((1.0, 1.0, 1.0, 1.0)) == (1023, 1023)


@SETTINGS
@given(st.integers(0, 1023), st.integers(0, 1023))
def test_reading_matches_the_reference(first, second):
    # The reference expects the top-left cell first on both axes.
    (r1, c1), (r2, c2) = divmod(first, 32), divmod(second, 32)
    top_left, bottom_right = min(r1, r2) * 32 + min(c1, c2), max(r1, r2) * 32 + max(c1, c2)
    assert patch_box(top_left, bottom_right) == patch_index_to_coordinate(top_left, bottom_right, 32)


def test_parsing_a_caption_matches_the_reference():
    text = (
        "<grounding> An image of<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863>"
        "</object> warming himself by<phrase> a fire</phrase><object><patch_index_0005><patch_index_0911>"
        "</delimiter_of_multi_objects/><patch_index_0100><patch_index_0100></object>."
    )
    _, entities = clean_text_and_extract_entities_with_bboxes(text)
    result = parse(text, "kosmos2", image_size=(1, 1))
    assert [p.phrase for p in result.phrases] == [name for name, _, _ in entities]
    assert [[tuple(b.as_list()) for b in p.boxes] for p in result.phrases] == [boxes for _, _, boxes in entities]
