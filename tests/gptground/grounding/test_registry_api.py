"""Registry, convenience functions, and errors for the caller's mistakes."""

import pytest

from gptground.grounding import (
    Box,
    GroundingFormat,
    Span,
    UnknownFormatError,
    UnsupportedNotationError,
    available_formats,
    format_boxes,
    format_span,
    get_format,
    parse,
    parse_boxes,
    parse_spans,
    register_format,
)


def test_builtin_formats_are_registered_with_groundinggpt_first():
    names = available_formats()
    assert names[0] == "groundinggpt"
    assert {"shikra", "minigptv2", "kosmos2", "ferret", "seconds", "vtimellm"} <= set(names)
    assert all(get_format(n).description for n in names)


def test_unknown_format_names_the_available_ones():
    with pytest.raises(UnknownFormatError, match="groundinggpt"):
        get_format("shikra2")


def test_get_format_passes_instances_through():
    fmt = get_format("ferret")
    assert get_format(fmt) is fmt


def test_register_format_refuses_to_overwrite_silently():
    with pytest.raises(ValueError, match="already registered"):
        register_format(get_format("shikra"))


def test_register_and_use_a_combined_format():
    combined = get_format("shikra").with_spans(get_format("seconds"))
    register_format(combined, replace=True)
    assert combined.name in available_formats()
    result = parse("A dog [0.1,0.2,0.3,0.4] from 1.0 to 2.0 seconds", combined.name, image_size=(10, 10))
    (phrase,) = result.phrases
    assert phrase.phrase == "A dog" and phrase.spans == [Span(1.0, 2.0)]


def test_convenience_functions_round_trip():
    size, box = (640, 480), Box(64, 48, 320, 240)
    text = format_boxes([box], size)
    assert text == "[0.100, 0.200, 0.500, 0.500]"  # 80 px of padding above: (48 + 80) / 640
    (parsed,) = parse_boxes(f"It is at {text}", size)
    assert parsed.as_list() == pytest.approx(box.as_list())
    assert format_span(Span(1.0, 2.0), 10.0) == "{0.10,0.20}"
    assert parse_spans("{0.10,0.20}", 10.0) == [Span(1.0, 2.0)]
    assert format_span(Span(1.0, 2.0), 10.0, fmt="vtimellm") == "from 10 to 20"
    assert parse_spans("from 10 to 20", 10.0, fmt="vtimellm") == [Span(1.0, 2.0)]
    assert parse_boxes("{<10><20><30><40>}", (100, 100), fmt="minigptv2")[0].x1 == 10.5


def test_formats_without_a_notation_say_so():
    with pytest.raises(UnsupportedNotationError, match="with_spans"):
        get_format("shikra").write_span(Span(0, 1), 2.0)
    with pytest.raises(UnsupportedNotationError, match="no box notation"):
        get_format("seconds").write_box(Box(0, 0, 1, 1), (2, 2))
    with pytest.raises(UnsupportedNotationError):
        get_format("seconds").with_spans(get_format("kosmos2"))
    with pytest.raises(ValueError, match="box notation, a span notation or both"):
        GroundingFormat("empty", "nothing")


@pytest.mark.parametrize("size", [(-1, 10), (10, 0), (float("nan"), 10), (10,), (float("inf"), 5)])
def test_bad_image_size_raises_when_writing_and_parsing(size):
    with pytest.raises(ValueError, match="image_size"):
        format_boxes([Box(0, 0, 1, 1)], size)
    with pytest.raises(ValueError, match="image_size"):
        parse("[0.1, 0.2, 0.3, 0.4]", image_size=size)


@pytest.mark.parametrize("duration", [0.0, -3.0, float("nan"), float("inf")])
def test_bad_duration_raises(duration):
    with pytest.raises(ValueError, match="duration"):
        format_span(Span(0, 1), duration)
    with pytest.raises(ValueError, match="duration"):
        parse_spans("{0.1,0.2}", duration)


def test_relative_span_formats_need_a_duration_to_write():
    with pytest.raises(ValueError, match="duration is required"):
        format_span(Span(0, 1), None)
    assert format_span(Span(0, 1), None, fmt="seconds") == "from 0.0 to 1.0 seconds"


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (Box(5, 0, 1, 1), "reversed"),
        (Box(0, 0, 11, 5), "outside"),
        (Box(-0.5, 0, 5, 5), "outside"),
        (Box(0, 0, float("nan"), 5), "non-finite"),
    ],
)
def test_boxes_the_caller_cannot_write(box, message):
    with pytest.raises(ValueError, match=message):
        format_boxes([box], (10, 10))


def test_clip_makes_an_overrunning_box_writable():
    assert format_boxes([Box(-1, 0, 11, 10).clip((10, 10))], (10, 10)) == "[0.000, 0.000, 1.000, 1.000]"


@pytest.mark.parametrize(
    ("span", "message"), [(Span(3, 1), "reversed"), (Span(0, 11), "outside"), (Span(-1, 1), "outside")]
)
def test_spans_the_caller_cannot_write(span, message):
    with pytest.raises(ValueError, match=message):
        format_span(span, 10.0)


def test_writing_no_boxes_raises():
    with pytest.raises(ValueError, match="empty"):
        format_boxes([], (10, 10))
