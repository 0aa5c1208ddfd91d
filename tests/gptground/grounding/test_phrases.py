"""Which phrase each group of values belongs to."""

import pytest

from gptground.grounding import get_format, parse

SIZE = (100, 100)
BOX = "[0.1, 0.2, 0.3, 0.4]"


def _phrases(text, fmt="groundinggpt"):
    return [p.phrase for p in parse(text, fmt, image_size=SIZE, duration=10.0).phrases]


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        (f"He is at {BOX}.", ["He"]),
        (f"A man {BOX} and a dog {BOX}.", ["A man", "a dog"]),
        (f"A man {BOX}, a dog {BOX}.", ["A man", "a dog"]),
        (f"The cup: {BOX}", ["The cup"]),
        (f"There is a cat. It is located at {BOX}.", ["It"]),
        (f"The value 0.5 marks the spot {BOX}", ["The value 0.5 marks the spot"]),
        (f"First line\nthe red car {BOX}", ["the red car"]),
        (BOX, [None]),
        (f"Two dogs {BOX}. {BOX}", ["Two dogs", None]),
    ],
)
def test_groundinggpt_phrase_is_the_text_before_in_the_same_sentence(text, phrases):
    assert _phrases(text) == phrases


@pytest.mark.parametrize("joined", [f"{BOX}{BOX}", f"{BOX}, {BOX}", f"{BOX} and {BOX}", f"{BOX} in {{0.1,0.2}}"])
def test_values_with_nothing_between_join_one_phrase(joined):
    (phrase,) = parse(f"Two cats {joined}.", image_size=SIZE, duration=10.0).phrases
    assert phrase.phrase == "Two cats"
    assert len(phrase.boxes) + len(phrase.spans) == 2


def test_phrase_offsets_point_into_the_text():
    text = f"Look: a tall man {BOX} next to a dog {BOX}."
    result = parse(text, image_size=SIZE)
    for phrase in result.phrases:
        assert text[phrase.start :].startswith(phrase.phrase)
        assert text[phrase.end - 1] == "]"
        for value in phrase.parsed_boxes:
            assert text[value.start : value.end] == BOX


def test_phrase_after_a_failed_notation_excludes_its_remains():
    assert _phrases(f"A dog [nan, 0.1, 0.2, 0.3]{BOX}") == [None]


def test_phrase_window_bounds_the_phrase():
    text = "word " * 100 + BOX
    result = get_format("groundinggpt").parse(text, image_size=SIZE)
    assert len(result.phrases[0].phrase) <= 200


def test_minigptv2_phrases_come_from_p_tags():
    text = (
        "<p>a man</p> {<10><20><30><40>}<delim>{<50><20><70><40>} is next to "
        "<p>a dog</p> {<1><2><3><4>} and {<5><6><7><8>}"
    )
    result = parse(text, "minigptv2", image_size=SIZE)
    assert [(p.phrase, len(p.boxes)) for p in result.phrases] == [("a man", 2), ("a dog", 1), (None, 1)]


def test_minigptv2_answer_without_phrase():
    assert _phrases("{<10><20><30><40>}", "minigptv2") == [None]


def test_kosmos2_object_without_phrase_and_phrase_without_object():
    text = "<grounding> An image of<phrase> nothing</phrase> and <object><patch_index_0000><patch_index_0033></object>"
    assert _phrases(text, "kosmos2") == [None]


def test_seconds_phrase():
    assert _phrases("The dog barks from 2.5 to 4.0 seconds.", "seconds") == ["The dog barks"]
