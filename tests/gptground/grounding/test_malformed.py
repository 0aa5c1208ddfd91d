"""Parsing never raises on model output: failures are reported, repairs are flagged."""

import time

import pytest

from gptground.grounding import Box, Flag, ParseLimits, Span, get_format, parse

SIZE = (100, 100)


def _only_failure(result):
    assert not result.phrases, result.phrases
    (failure,) = result.failures
    return failure


# --- Failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("groundinggpt", "It is at [0.1, 0.2, 0."),
        ("groundinggpt", "It is at [0.1, 0.2, "),
        ("groundinggpt", "at {0.1,"),
        ("shikra", "[0.1,0.2,0.3,0.4;0.5"),
        ("minigptv2", "<p>a man</p> {<12><34><5"),
        ("kosmos2", "<phrase> a cat</phrase><object><patch_index_0044><patch_ind"),
        ("kosmos2", "<phrase> a cat</phrase><object><patch_index_0044><patch_index_0863></obj"),
        ("seconds", "It happens from 3.2 to"),
        ("vtimellm", "It happens from 05 to"),
    ],
)
def test_truncated_output_is_reported_as_truncation(name, text):
    failure = _only_failure(get_format(name).parse(text, image_size=SIZE, duration=10.0))
    assert "truncated" in failure.reason
    assert text[failure.offset] in "[{<f"  # reported where the notation starts
    assert failure.snippet == text[failure.offset : failure.offset + 40]


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("groundinggpt", "[0.1, 0.2, 0.3]", "',' after number 3 of 4"),
        ("groundinggpt", "[0.1, 0.2, 0.3, 0.4, 0.5]", "']'"),
        ("groundinggpt", "[0.1; 0.2, 0.3, 0.4]", "',' after number 1 of 4"),
        ("groundinggpt", "{0.1 0.2}", "','"),
        ("minigptv2", "{<12><34><56>}", "'<' before number 4 of 4"),
        ("minigptv2", "{<12><34><56><78><90>}", "'}'"),
        ("kosmos2", "<object><patch_index_0044></object>", "a second <patch_index_XXXX>"),
        ("kosmos2", "<object></object>", "<patch_index_XXXX>"),
    ],
)
def test_malformed_notation_says_what_was_expected(name, text, reason):
    failure = _only_failure(get_format(name).parse(text, image_size=SIZE, duration=10.0))
    assert reason in failure.reason and "found" in failure.reason


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("groundinggpt", "[nan, 0.2, 0.3, 0.4]"),
        ("groundinggpt", "[0.1, inf, 0.3, 0.4]"),
        ("groundinggpt", "[0.1, 0.2, -Infinity, 0.4]"),
        ("groundinggpt", "[0.1, 0.2, 1e999, 0.4]"),
        ("groundinggpt", "{NaN,0.2}"),
        ("shikra", "[0.1,0.2,0.3,0.4;nan,0.2,0.3,0.4]"),
        ("minigptv2", "{<nan><1><2><3>}"),
        ("seconds", "from nan to 3 seconds"),
    ],
)
def test_non_finite_values_are_failures(name, text):
    result = get_format(name).parse(text, image_size=SIZE, duration=10.0)
    assert not result.boxes and not result.spans
    assert "non-finite" in result.failures[0].reason


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("minigptv2", "{<12.5><34><56><78>}", "integers"),
        ("ferret", "[10.5, 20, 30, 40]", "integers"),
        ("vtimellm", "from 5.5 to 43", "integer"),
        ("kosmos2", "<object><patch_index_0044><patch_index_2000></object>", "outside 0-1023"),
    ],
)
def test_values_that_cannot_exist_in_the_notation_are_failures(name, text, reason):
    assert reason in _only_failure(get_format(name).parse(text, image_size=SIZE, duration=10.0)).reason


def test_missing_image_size_or_duration_is_a_failure_not_an_error():
    result = parse("A cat [0.1, 0.2, 0.3, 0.4] in {0.1,0.2}")
    assert not result.phrases
    assert ["image_size is required" in f.reason for f in result.failures] == [True, False]
    assert "duration is required" in result.failures[1].reason
    assert parse("from 1 to 2", "seconds").ok  # absolute seconds need no duration


def test_good_values_survive_bad_ones_around_them():
    text = "A [nan, 0.1, 0.2, 0.3] then a dog [0.1, 0.2, 0.3, 0.4] then [0.5, 0."
    result = parse(text, image_size=SIZE)
    assert [p.phrase for p in result.phrases] == ["a dog"]
    assert result.boxes[0].as_list() == pytest.approx([10, 20, 30, 40])
    assert [f.offset for f in result.failures] == [text.index("[nan"), text.index("[0.5")]


def test_text_that_is_not_a_notation_is_ignored():
    text = "See [1] and [citation needed]; {name} is <b>bold</b> from Monday to Friday, 2020 - 21 kids."
    for name in ("groundinggpt", "shikra", "minigptv2", "kosmos2", "ferret"):
        result = get_format(name).parse(text, image_size=SIZE, duration=10.0)
        assert not result.phrases
    assert "',' after number 1 of 4" in parse(text, image_size=SIZE).failures[0].reason  # "[1]"


# --- Flagged repairs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("groundinggpt", "[0.5, 0.6, 0.1, 0.2]"),
        ("shikra", "[0.5,0.6,0.1,0.2]"),
        ("ferret", "[500, 600, 100, 200]"),
        ("minigptv2", "{<50><60><10><20>}"),
    ],
)
def test_reversed_boxes_are_swapped_and_flagged(name, text):
    result = get_format(name).parse(text, image_size=SIZE)
    (value,) = result.phrases[0].parsed_boxes
    assert value.flags == {Flag.SWAPPED}
    assert value.value.x1 < value.value.x2 and value.value.y1 < value.value.y2
    assert value.value.x1 == pytest.approx(10, abs=1) and value.value.y2 == pytest.approx(60, abs=1)


def test_reversed_kosmos2_cells_are_swapped_per_axis():
    # Cells (row 26, col 31) then (row 1, col 12): both axes reversed.
    result = parse("<object><patch_index_0863><patch_index_0044></object>", "kosmos2", image_size=(1, 1))
    (value,) = result.phrases[0].parsed_boxes
    assert value.flags == {Flag.SWAPPED}
    assert value.value.as_list() == pytest.approx([0.390625, 0.046875, 0.984375, 0.828125])


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("groundinggpt", "[0.1, 0.2, 1.3, 0.4]", [10, 20, 100, 40]),
        ("groundinggpt", "[-0.2, 0.2, 0.3, 0.4]", [0, 20, 30, 40]),
        ("ferret", "[100, 150, 1300, 200]", [10.05, 15.05, 99.95, 20.05]),
        ("minigptv2", "{<-5><34><120><78>}", [0.5, 34.5, 100, 78.5]),
    ],
)
def test_out_of_range_values_are_clamped_and_flagged(name, text, expected):
    (value,) = get_format(name).parse(text, image_size=SIZE).phrases[0].parsed_boxes
    assert value.flags == {Flag.CLAMPED}
    assert value.value.as_list() == pytest.approx(expected)


def test_box_drawn_in_the_padding_is_clamped_to_the_image():
    # 100 x 50 image: on the padded square it spans y in [0.25, 0.75].
    (value,) = parse("[0.1, 0.0, 0.5, 0.2]", image_size=(100, 50)).phrases[0].parsed_boxes
    assert value.flags == {Flag.CLAMPED}
    assert value.value == Box(10, 0, 50, 0)


def test_rounding_at_the_image_edge_is_not_flagged():
    # 3 x 1 image: y2 = 1 px is 0.6667 of the square, written 0.667, a 0.001 px overrun.
    fmt = get_format("groundinggpt")
    text = fmt.write_box(Box(0, 0, 3, 1), (3, 1))
    (value,) = fmt.parse(text, image_size=(3, 1)).phrases[0].parsed_boxes
    assert value.flags == frozenset() and value.value.y2 == 1


@pytest.mark.parametrize(
    ("name", "text", "flags", "expected"),
    [
        ("groundinggpt", "{0.5,0.2}", {Flag.SWAPPED}, [2, 5]),
        ("groundinggpt", "{1.5, 0.2}", {Flag.SWAPPED, Flag.CLAMPED}, [2, 10]),
        ("seconds", "from 7.9 to 3.2 seconds", {Flag.SWAPPED}, [3.2, 7.9]),
        ("seconds", "from -1 to 3 seconds", {Flag.CLAMPED}, [0, 3]),
        ("seconds", "from 3 to 12.5 seconds", {Flag.CLAMPED}, [3, 10]),
        ("vtimellm", "from 43 to 05", {Flag.SWAPPED}, [0.5, 4.3]),
        ("vtimellm", "from 05 to 120", {Flag.CLAMPED}, [0.5, 9.9]),
    ],
)
def test_span_repairs_are_flagged(name, text, flags, expected):
    (value,) = get_format(name).parse(text, duration=10.0).phrases[0].parsed_spans
    assert value.flags == flags
    assert value.value.as_list() == pytest.approx(expected)


# --- Bounded work ----------------------------------------------------------------------------

HOSTILE = [
    "[" * 1_000_000,
    "[0.1, " * 200_000,
    "{<1><" * 200_000,
    "<object>" * 200_000,
    "<object><patch_index_0001>" * 50_000,
    "1" * 1_000_000,
    "from " + "1" * 1_000_000,
    "0." * 500_000 + "-",
    "from 1 to " * 100_000,
    "1 - " * 250_000,
    "<p>" * 300_000 + "</p>{<1><2><3><4>}",
    "a " * 500_000 + "[0.1, 0.2, 0.3, 0.4]",
]


@pytest.mark.parametrize("text", HOSTILE, ids=[t[:12] + f"..x{len(t)}" for t in HOSTILE])
def test_hostile_text_is_parsed_quickly_by_every_format(text):
    for name in ("groundinggpt", "shikra", "minigptv2", "kosmos2", "ferret", "seconds", "vtimellm"):
        started = time.perf_counter()
        result = get_format(name).parse(text, image_size=SIZE, duration=10.0)
        assert time.perf_counter() - started < 1.0, name
        assert len(result.failures) <= 102  # max_failures + "stopped" + "not scanned"


def test_text_past_max_chars_is_reported_not_scanned():
    text = "x" * 50 + "[0.1, 0.2, 0.3, 0.4]"
    result = get_format("groundinggpt").parse(text, image_size=SIZE, limits=ParseLimits(max_chars=40))
    assert not result.boxes
    assert result.failures[-1].offset == 40 and "only the first 40" in result.failures[-1].reason


def test_scanning_stops_after_max_groups_and_says_so():
    text = "[0.1, 0.2, 0.3, 0.4] " * 10
    result = get_format("groundinggpt").parse(text, image_size=SIZE, limits=ParseLimits(max_groups=3))
    assert len(result.boxes) == 3
    assert "max_groups" in result.failures[-1].reason


def test_scanning_stops_after_max_failures_and_says_so():
    text = "[0.1] " * 10
    result = get_format("groundinggpt").parse(text, image_size=SIZE, limits=ParseLimits(max_failures=4))
    assert len(result.failures) == 5 and "max_failures" in result.failures[-1].reason


def test_many_valid_groups_stop_at_the_default_limit():
    result = parse("[0.1, 0.2, 0.3, 0.4]" * 5_000, image_size=SIZE)
    assert len(result.boxes) == 1_000


def test_parse_limits_are_validated():
    with pytest.raises(ValueError, match="max_chars"):
        ParseLimits(max_chars=0)


def test_spans_outside_the_clip_flag_only_beyond_rounding():
    fmt = get_format("seconds")
    text = fmt.write_span(Span(3.0, 7.97), 7.97)  # written "7.97" -> "8.0"
    (value,) = fmt.parse(text, duration=7.97).phrases[0].parsed_spans
    assert value.flags == frozenset() and value.value.end == 7.97
