"""Literal outputs of each system, parsed and written."""

import pytest

from gptground.grounding import Box, Span, get_format, parse


def _approx_box(box: Box):
    return pytest.approx(box.as_list(), abs=1e-6)


# --- GroundingGPT ------------------------------------------------------------------------


def test_groundinggpt_answer_from_its_data():
    result = parse("He is at [0.123, 0.456, 0.789, 0.900].", image_size=(1000, 1000))
    (phrase,) = result.phrases
    assert phrase.phrase == "He"
    assert phrase.boxes[0].as_list() == _approx_box(Box(123, 456, 789, 900))


def test_groundinggpt_box_removes_square_padding():
    # 800 x 1000 image: padded 100 px on the left and right.
    (box,) = parse("[0.212, 0.331, 0.704, 0.912]", image_size=(800, 1000)).boxes
    assert box.as_list() == _approx_box(Box(112, 331, 604, 912))


def test_groundinggpt_writes_three_decimals_with_spaces():
    text = get_format("groundinggpt").write_box(Box(0, 0, 400, 300), (400, 300))
    assert text == "[0.000, 0.125, 1.000, 0.875]"


@pytest.mark.parametrize("notation", ["{0.09,0.15}", "{0.09, 0.15}"])
def test_groundinggpt_timestamps_with_or_without_a_space(notation):
    text = f"The dog turns around to look at the camera in {notation}"
    (phrase,) = parse(text, duration=100.0).phrases
    assert phrase.phrase == "The dog turns around to look at the camera"
    assert phrase.spans[0].as_list() == pytest.approx([9.0, 15.0])


def test_groundinggpt_writes_timestamps_without_a_space():
    assert get_format("groundinggpt").write_span(Span(2.5, 6.1), 10.0) == "{0.25,0.61}"


def test_groundinggpt_adjacent_boxes_belong_to_one_phrase():
    text = "Two cats [0.1, 0.1, 0.2, 0.2][0.5, 0.5, 0.6, 0.6] sleep."
    (phrase,) = parse(text, image_size=(100, 100)).phrases
    assert phrase.phrase == "Two cats" and len(phrase.boxes) == 2


# --- Shikra --------------------------------------------------------------------------------


def test_shikra_literal():
    (box,) = parse("[0.102,0.203,0.512,0.886]", "shikra", image_size=(1000, 1000)).boxes
    assert box.as_list() == _approx_box(Box(102, 203, 512, 886))


def test_shikra_semicolon_joins_boxes_of_one_phrase():
    fmt = get_format("shikra")
    text = fmt.write_boxes([Box(0, 0, 50, 50), Box(50, 50, 100, 100)], (100, 100))
    assert text == "[0.000,0.000,0.500,0.500;0.500,0.500,1.000,1.000]"
    assert len(fmt.parse(f"the dogs {text}", image_size=(100, 100)).phrases[0].boxes) == 2


# --- MiniGPT-v2 ------------------------------------------------------------------------------


def test_minigptv2_literal_reads_bin_centres_of_the_unpadded_image():
    (phrase,) = parse("<p>a man</p> {<12><34><56><78>}", "minigptv2", image_size=(200, 100)).phrases
    assert phrase.phrase == "a man"
    assert phrase.boxes[0].as_list() == _approx_box(Box(25, 34.5, 113, 78.5))


def test_minigptv2_writes_truncated_hundredths_and_delim():
    text = get_format("minigptv2").write_phrase("a man", [Box(25, 34.9, 113, 78), Box(0, 0, 200, 100)], (200, 100))
    assert text == "<p>a man</p> {<12><34><56><78>}<delim>{<0><0><100><100>}"


# --- Kosmos-2 --------------------------------------------------------------------------------

KOSMOS_TEXT = (
    "<grounding> An image of<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863>"
    "</object> warming himself by<phrase> a fire</phrase><object><patch_index_0005><patch_index_0911></object>."
)


def test_kosmos2_literal_matches_the_reference_decoding():
    # Expected values are those transformers' Kosmos2Processor documents for this text.
    result = parse(KOSMOS_TEXT, "kosmos2", image_size=(1, 1))
    assert [p.phrase for p in result.phrases] == ["a snowman", "a fire"]
    assert result.boxes[0].as_list() == pytest.approx([0.390625, 0.046875, 0.984375, 0.828125])
    assert result.boxes[1].as_list() == pytest.approx([0.171875, 0.015625, 0.484375, 0.890625])
    assert KOSMOS_TEXT[result.phrases[0].start :].startswith("<phrase> a snowman")


def test_kosmos2_writes_the_reference_tokens():
    fmt = get_format("kosmos2")
    text = fmt.write_phrase("a snowman", [Box(0.390625, 0.046875, 0.984375, 0.828125)], (1, 1))
    assert text == "<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object>"


def test_kosmos2_several_objects_and_spaced_tokens():
    text = (
        "<phrase> two dogs</phrase><object> <patch_index_0000> <patch_index_0033>"
        " </delimiter_of_multi_objects/> <patch_index_0990> <patch_index_1023> </object>"
    )
    (phrase,) = parse(text, "kosmos2", image_size=(320, 320)).phrases
    assert phrase.phrase == "two dogs"
    assert [b.as_list() for b in phrase.boxes] == [[5, 5, 15, 15], [305, 305, 315, 315]]


# --- Ferret ----------------------------------------------------------------------------------


def test_ferret_literal_reads_bin_centres():
    (phrase,) = parse("a dog [100, 150, 300, 200]", "ferret", image_size=(1000, 2000)).phrases
    assert phrase.phrase == "a dog"
    assert phrase.boxes[0].as_list() == _approx_box(Box(100.5, 301, 300.5, 401))


def test_ferret_writes_truncated_thousandths_capped_at_999():
    assert get_format("ferret").write_box(Box(0, 0.99, 1000, 500), (1000, 500)) == "[0, 1, 999, 999]"


# --- Seconds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "It happens from 3.2 to 7.9 seconds.",
        "It happens 3.2 - 7.9",
        "It happens 3.2-7.9 seconds.",
        "It happens from 3.2s to 7.9s.",
        "It happens 3.2 – 7.9 sec.",
    ],
)
def test_seconds_notations(text):
    (phrase,) = parse(text, "seconds").phrases
    assert phrase.spans[0].as_list() == pytest.approx([3.2, 7.9])
    assert phrase.phrase == "It happens"


def test_seconds_writes_one_decimal():
    assert get_format("seconds").write_span(Span(3.21, 7.88), 10.0) == "from 3.2 to 7.9 seconds"


# --- VTimeLLM --------------------------------------------------------------------------------


def test_vtimellm_literal():
    (span,) = parse("from 05 to 43", "vtimellm", duration=200.0).spans
    assert span.as_list() == pytest.approx([10.0, 86.0])


def test_vtimellm_answer_from_its_data_doc():
    text = "From 00 to 17, woman is counting money. From 91 to 98, two people shaking hands."
    spans = parse(text, "vtimellm", duration=54.2).spans
    assert [s.as_list() for s in spans] == [pytest.approx([0.0, 9.214]), pytest.approx([49.322, 53.116])]


def test_vtimellm_writes_rounded_two_digit_indices_capped_at_99():
    fmt = get_format("vtimellm")
    assert fmt.write_span(Span(0.0, 9.4), 54.2) == "from 00 to 17"  # example of VTimeLLM's data doc
    assert fmt.write_span(Span(2.0, 40.0), 40.0) == "from 05 to 99"


def test_vtimellm_accepts_between_and():
    (span,) = parse("It is between 10 and 20.", "vtimellm", duration=100.0).spans
    assert span.as_list() == pytest.approx([10.0, 20.0])
