"""Conversation templates: exact rendering, loss mask, and prompt == training prefix."""

from __future__ import annotations

import pytest
import torch
from llama_like import llama_like_tokenizer

from gptground.conversation import (
    ASSISTANT,
    HUMAN,
    Piece,
    ConversationError,
    Template,
    Turn,
    check_turns,
    get_template,
    normalize_role,
    render,
    render_prompt,
    render_text,
    template_names,
)
from gptground.processor import Processor
from gptground.tokenizer import load_tokenizer

SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
TWO_ROUNDS = [
    Turn(HUMAN, "<image>\nWhere is the man in red?"),
    Turn(ASSISTANT, "He is at [0.123, 0.456, 0.789, 0.900]."),
    Turn(HUMAN, "And when does he wave?"),
    Turn(ASSISTANT, "In {0.09,0.15}."),
]


def test_groundinggpt_renders_the_text_groundinggpt_trained_on():
    text = render_text(get_template("groundinggpt"), TWO_ROUNDS[:2])
    assert text == (
        f"{SYSTEM}\n\n### Human: <image>\nWhere is the man in red?"
        "\n### Assistant: He is at [0.123, 0.456, 0.789, 0.900].\n###"
    )


def test_groundinggpt_release_ends_with_the_trained_trailing_space_of_the_released_training_text():
    # lego/train/train.py: header = system + "\n\n"; each turn "### " + role + ": " + value + "\n";
    # then one more "### " (not masked, so trained).
    expected = SYSTEM + "\n\n" + "".join(
        f"### {'Human' if t.role == HUMAN else 'Assistant'}: {t.value}\n" for t in TWO_ROUNDS
    ) + "### "
    template = get_template("groundinggpt_release")
    assert render_text(template, TWO_ROUNDS) == expected
    assert render(template, TWO_ROUNDS)[-1] == Piece(" ", True, "sep", 3)
    assert render_prompt(template, TWO_ROUNDS[:3]) == render_prompt(get_template("groundinggpt"), TWO_ROUNDS[:3])


def test_media_last_writes_a_human_message_s_leading_placeholders_after_its_text():
    template = get_template("groundinggpt_short_media_last")
    turns = [Turn(HUMAN, "<image>\n<sound>\nWhich shape?"), Turn(ASSISTANT, "<image> is not moved"),
             Turn(HUMAN, "And now?"), Turn(ASSISTANT, "[0.1]")]
    assert render_text(template, turns) == (
        "### Human: Which shape?\n<image>\n<sound>\n### Assistant: <image> is not moved\n###"
        " Human: And now?\n### Assistant: [0.1]\n###"
    )
    middle = [Turn(HUMAN, "Find it in <image> please."), Turn(ASSISTANT, "[0.1]")]
    assert render_text(template, middle) == render_text(get_template("groundinggpt_short"), middle)


def test_llava_v0_renders_the_single_separator_style():
    text = render_text(get_template("llava_v0"), TWO_ROUNDS[:2])
    assert (
        text
        == f"{SYSTEM}###Human: <image>\nWhere is the man in red?###Assistant: He is at [0.123, 0.456, 0.789, 0.900].###"
    )


def test_vicuna_v1_renders_user_assistant_with_eos():
    text = render_text(get_template("vicuna_v1"), TWO_ROUNDS)
    system = get_template("vicuna_v1").system
    assert text == (
        f"{system} USER: <image>\nWhere is the man in red? ASSISTANT: He is at [0.123, 0.456, 0.789, 0.900].</s>"
        "USER: And when does he wave? ASSISTANT: In {0.09,0.15}.</s>"
    )


@pytest.mark.parametrize("name", template_names())
def test_only_assistant_messages_and_their_closing_separators_are_trained(name):
    pieces = render(get_template(name), TWO_ROUNDS)
    trained = [(p.kind, p.text) for p in pieces if p.trained]
    sep, closing = get_template(name).seps[1], get_template(name).closing
    assert trained == [
        ("message", " He is at [0.123, 0.456, 0.789, 0.900]."),
        ("sep", sep),
        ("message", " In {0.09,0.15}."),
        ("sep", sep),
    ] + ([("sep", closing)] if closing else [])
    headers = [p for p in pieces if p.kind == "header"]
    assert len(headers) == 4 and not any(p.trained for p in headers)


@pytest.mark.parametrize("name", template_names())
@pytest.mark.parametrize("n_turns", [2, 4])
def test_prompt_is_a_prefix_of_the_training_text_ending_with_the_assistant_header(name, n_turns):
    template = get_template(name)
    turns = TWO_ROUNDS[:n_turns]
    prompt, text = render_prompt(template, turns), render_text(template, turns)
    assert text.startswith(prompt)
    assert prompt.endswith(template.role_header(ASSISTANT))
    assert text[len(prompt) :] == template.message_sep + turns[-1].value + template.seps[1] + template.closing


@pytest.mark.parametrize("name", template_names())
def test_prompt_of_a_conversation_ending_with_a_question_equals_the_answered_one(name):
    template = get_template(name)
    assert render_prompt(template, TWO_ROUNDS[:3]) == render_prompt(template, TWO_ROUNDS)


@pytest.mark.parametrize("tokenizer_name", ["builtin", "llama_like"])
@pytest.mark.parametrize("name", template_names())
def test_prompt_ids_are_a_prefix_of_the_training_ids(name, tokenizer_name):
    tokenizer = load_tokenizer("builtin:tiny") if tokenizer_name == "builtin" else llama_like_tokenizer()
    processor = Processor(tokenizer, {}, template=name, max_length=512)
    turns = [Turn(t.role, t.value.replace("<image>\n", "")) for t in TWO_ROUNDS]
    record = {"id": "r", "conversations": [{"from": t.role, "value": t.value} for t in turns]}
    train_ids = processor(record).input_ids
    prompt_ids = processor.prompt(turns).input_ids
    assert len(prompt_ids) < len(train_ids)
    assert torch.equal(train_ids[: len(prompt_ids)], prompt_ids)
    # ids decode to exactly the rendered text: no space is inserted where pieces meet
    assert tokenizer.decode(prompt_ids[1:]) == render_prompt(get_template(name), turns)
    assert tokenizer.decode(train_ids[1:]) == render_text(get_template(name), turns)


@pytest.mark.parametrize(
    "turns, message",
    [
        ([], "no turns"),
        ([Turn(ASSISTANT, "hi")], "expected 'human'"),
        ([Turn(HUMAN, "a"), Turn(HUMAN, "b")], "turn 1"),
        ([Turn(HUMAN, "a"), Turn(ASSISTANT, "b"), Turn(HUMAN, "c")], "must end with an 'assistant' turn"),
    ],
)
def test_bad_conversations_are_rejected(turns, message):
    with pytest.raises(ConversationError, match=message):
        render(get_template("groundinggpt"), turns)


def test_a_prompt_may_end_with_a_question_but_a_training_text_may_not():
    check_turns(TWO_ROUNDS[:3], prompt=True)
    with pytest.raises(ConversationError):
        check_turns(TWO_ROUNDS[:3])


def test_roles_are_normalised_from_record_names():
    assert [normalize_role(r) for r in ("human", "USER", "gpt", "Assistant")] == [HUMAN, HUMAN, ASSISTANT, ASSISTANT]
    with pytest.raises(ConversationError, match="unknown role 'system'"):
        normalize_role("system")
    with pytest.raises(ConversationError, match="Turn.role"):
        Turn("gpt", "x")


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(ValueError, match="groundinggpt"):
        get_template("vicuna_v2")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"roles": ("Human", "Human")}, "roles"),
        ({"header": "{name}:"}, "header"),
        ({"stop": "###"}, "stop"),
        ({"name": ""}, "name"),
    ],
)
def test_template_fields_are_validated(kwargs, field):
    base = {"name": "t", "system": "s", "roles": ("U", "A"), "system_sep": " ", "seps": (" ", "</s>"), "stop": "</s>"}
    with pytest.raises(ValueError, match=field):
        Template(**{**base, **kwargs})
