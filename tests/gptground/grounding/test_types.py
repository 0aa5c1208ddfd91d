"""Box and Span helpers."""

from gptground.grounding import Box, Span


def test_box_from_xywh():
    assert Box.from_xywh(10, 20, 30, 40) == Box(10, 20, 40, 60)


def test_box_clip_cuts_overruns_to_the_image():
    assert Box(-1, 5, 101, 50.5).clip((100, 50)) == Box(0, 5, 100, 50)


def test_box_size_of_reversed_box_is_zero():
    assert Box(10, 10, 5, 20).width == 0 and Box(10, 10, 5, 20).area == 0


def test_span_clip_and_length():
    assert Span(-0.5, 12.0).clip(10.0) == Span(0.0, 10.0)
    assert Span(2.0, 5.5).length == 3.5
