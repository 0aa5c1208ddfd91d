"""Writing then parsing gives the value back within the format's precision.

Each bound is derived here from the format's definition (not read from the code): half a
quantisation step, in pixels or seconds, except where the format's own convention is
coarser (Kosmos-2 one-cell-thick boxes, VTimeLLM's last frame).
"""

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gptground.grounding import Box, Span, get_format

SETTINGS = settings(max_examples=200, deadline=None)

sides = st.one_of(st.integers(1, 4000), st.sampled_from([1, 2, 7, 1000]))


@st.composite
def image_and_box(draw):
    """A random image size (thin ones included) and a box inside it."""
    width, height = draw(sides), draw(sides)
    xs = sorted(draw(st.floats(0, width)) for _ in range(2))
    ys = sorted(draw(st.floats(0, height)) for _ in range(2))
    return (width, height), Box(xs[0], ys[0], xs[1], ys[1])


@st.composite
def duration_and_span(draw):
    duration = draw(st.floats(0.1, 10_000))
    times = sorted(draw(st.floats(0, duration)) for _ in range(2))
    return duration, Span(*times)


def _eps(*scales):
    return 1e-9 * max(1.0, *scales)


def _round_trip_box(name, size, box):
    result = get_format(name).parse(get_format(name).write_box(box, size), image_size=size)
    assert result.ok, result.failures
    assert len(result.phrases) == 1 and not result.phrases[0].flags
    (parsed,) = result.boxes
    return parsed


def _assert_close(parsed: Box, box: Box, tol_x: float, tol_y: float):
    for got, want, tol in zip(parsed.as_list(), box.as_list(), (tol_x, tol_y, tol_x, tol_y), strict=True):
        assert abs(got - want) <= tol, (parsed, box, tol)


@SETTINGS
@given(image_and_box())
def test_groundinggpt_boxes_within_half_a_thousandth_of_the_square(case):
    size, box = case
    side = max(size)
    tol = side * 0.0005 + _eps(side)  # 3 decimals of the padded square
    _assert_close(_round_trip_box("groundinggpt", size, box), box, tol, tol)


@SETTINGS
@given(image_and_box())
def test_shikra_boxes_within_half_a_thousandth_of_the_square(case):
    size, box = case
    side = max(size)
    tol = side * 0.0005 + _eps(side)
    _assert_close(_round_trip_box("shikra", size, box), box, tol, tol)


@SETTINGS
@given(image_and_box())
def test_ferret_boxes_within_half_a_bin_of_1000(case):
    (width, height), box = case
    parsed = _round_trip_box("ferret", (width, height), box)
    _assert_close(parsed, box, width / 2000 + _eps(width), height / 2000 + _eps(height))


@SETTINGS
@given(image_and_box())
def test_minigptv2_boxes_within_half_a_bin_of_100(case):
    (width, height), box = case
    parsed = _round_trip_box("minigptv2", (width, height), box)
    _assert_close(parsed, box, width / 200 + _eps(width), height / 200 + _eps(height))


@SETTINGS
@given(image_and_box())
def test_kosmos2_boxes_within_half_a_cell_or_a_cell_when_one_cell_thick(case):
    (width, height), box = case
    text = get_format("kosmos2").write_box(box, (width, height))
    first, second = (int(i) for i in re.findall(r"<patch_index_(\d{4})>", text))
    one_cell_thick = first // 32 == second // 32 or first % 32 == second % 32
    cells = 1 if one_cell_thick else 0.5
    parsed = _round_trip_box("kosmos2", (width, height), box)
    _assert_close(parsed, box, cells * width / 32 + _eps(width), cells * height / 32 + _eps(height))


@SETTINGS
@given(image_and_box(), st.integers(2, 4))
def test_several_boxes_of_one_phrase_come_back_in_order(case, count):
    size, box = case
    boxes = [box] * count
    for name in ("groundinggpt", "shikra", "ferret", "minigptv2", "kosmos2"):
        fmt = get_format(name)
        result = fmt.parse(fmt.write_phrase("things", boxes, size), image_size=size)
        assert result.ok and len(result.phrases) == 1
        assert result.phrases[0].phrase == "things"
        assert len(result.boxes) == count and len(set(result.boxes)) == 1


def _round_trip_span(name, duration, span):
    fmt = get_format(name)
    result = fmt.parse(fmt.write_span(span, duration), duration=duration)
    assert result.ok, result.failures
    assert len(result.phrases) == 1 and not result.phrases[0].flags
    (parsed,) = result.spans
    return parsed


@SETTINGS
@given(duration_and_span())
def test_groundinggpt_spans_within_half_a_hundredth_of_the_clip(case):
    duration, span = case
    parsed = _round_trip_span("groundinggpt", duration, span)
    tol = duration * 0.005 + _eps(duration)
    assert abs(parsed.start - span.start) <= tol and abs(parsed.end - span.end) <= tol


def test_seconds_end_rounded_up_past_the_clip_is_not_flagged():
    # 0.75 s is written "0.8"; 0.8 - 0.75 is a hair over half a step in floating point.
    assert _round_trip_span("seconds", 0.75, Span(0.0, 0.75)) == Span(0.0, 0.75)


@SETTINGS
@given(duration_and_span())
def test_seconds_spans_within_five_hundredths_of_a_second(case):
    duration, span = case
    parsed = _round_trip_span("seconds", duration, span)
    tol = 0.05 + _eps(duration)
    assert abs(parsed.start - span.start) <= tol and abs(parsed.end - span.end) <= tol


@SETTINGS
@given(duration_and_span())
def test_vtimellm_spans_within_half_a_frame_except_in_the_last(case):
    duration, span = case
    parsed = _round_trip_span("vtimellm", duration, span)
    for got, want in ((parsed.start, span.start), (parsed.end, span.end)):
        frames = 0.5 if want / duration <= 0.995 else 1.0  # index 100 does not exist
        assert abs(got - want) <= frames * duration / 100 + _eps(duration)


@SETTINGS
@given(duration_and_span())
def test_seconds_spans_parse_without_a_duration(case):
    _, span = case
    fmt = get_format("seconds")
    (parsed,) = fmt.parse(fmt.write_span(span, None)).spans
    assert math.isclose(parsed.start, round(span.start, 1), abs_tol=1e-9)
