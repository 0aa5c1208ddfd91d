"""Conversation templates as named data, and the one function that renders them.

A template turns alternating human/assistant turns into text::

    system + system_sep
    + header(human) + message_sep + question + human_sep
    + header(assistant) + message_sep + answer + assistant_sep
    + ...

``render`` returns that text as ``Piece`` s, each marked trained or not: only the
assistant's message (its leading space included) and the separator that closes it are
trained, so the model learns to answer and to stop; the system prompt, human turns and all
role headers are masked. ``render(..., prompt=True)`` is the inference prompt: the same
pieces up to and including the last assistant header, so a prompt is by construction a
prefix of the training text of the same conversation (the reference code rendered the two
with different whitespace).

Templates (``get_template``):

- ``groundinggpt``: the text GroundingGPT (and Vicuna v0) *trained* on,
  ``{system}\\n\\n### Human: {q}\\n### Assistant: {a}\\n###``; generation stops at ``###``.
- ``groundinggpt_short``: the same without the system prompt,
  ``### Human: {q}\n### Assistant: {a}\n###`` (the tiny recipes: small decoders trained
  from scratch gain nothing from it, and it was a quarter of each sample).
- ``groundinggpt_short_media_last``: the same with each human message's leading media
  placeholders written after its text, ``### Human: {q}\n<image>\n### Assistant: ...``
  (the tiny recipes: media tokens that follow the question can attend to it).
- ``groundinggpt_release``: ``groundinggpt`` exactly as the released GroundingGPT-7B's
  ``lego/train/train.py::_add_speaker_and_signal`` wrote it: after the last turn one more
  ``"### "`` begins, so the trained text ends ``\n### `` (the trailing space is a trained
  token); the prompt is the same as ``groundinggpt``'s. Converted release folders record it.
- ``llava_v0``: LLaVA's ``SeparatorStyle.SINGLE`` with ``sep="###"``, which GroundingGPT's
  *inference* code used: ``{system}###Human: {q}###Assistant: {a}###``.
- ``vicuna_v1``: ``{system} USER: {q} ASSISTANT: {a}</s>USER: ...``; stops at ``</s>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

HUMAN = "human"
ASSISTANT = "assistant"
# "from" values of annotation records -> canonical role
ROLE_ALIASES = {"human": HUMAN, "user": HUMAN, "gpt": ASSISTANT, "assistant": ASSISTANT}


class ConversationError(ValueError):
    """A conversation that no template can render: unknown role, roles not alternating..."""


def normalize_role(raw: str) -> str:
    """The canonical role (``"human"`` / ``"assistant"``) of a record's ``from`` value."""
    role = ROLE_ALIASES.get(raw.lower()) if isinstance(raw, str) else None
    if role is None:
        raise ConversationError(f"unknown role {raw!r}; expected one of {sorted(ROLE_ALIASES)}")
    return role


@dataclass(frozen=True)
class Turn:
    """One message of a conversation. ``role`` is ``"human"`` or ``"assistant"``."""

    role: str
    value: str

    def __post_init__(self) -> None:
        if self.role not in (HUMAN, ASSISTANT):
            raise ConversationError(f"Turn.role must be {HUMAN!r} or {ASSISTANT!r}, got {self.role!r}")
        if not isinstance(self.value, str):
            raise ConversationError(f"Turn.value must be a string, got {type(self.value).__name__}")


@dataclass(frozen=True)
class Template:
    """How a conversation is written out. Pure data; ``render`` is the only code using it.

    Attributes:
        name: registry name, e.g. ``"groundinggpt"``.
        system: the system prompt, written once at the start.
        roles: (human, assistant) names as written in headers, e.g. ("Human", "Assistant").
        system_sep: text between the system prompt and the first header.
        seps: (human_sep, assistant_sep): text closing a human / an assistant message.
        stop: text whose generation ends an answer (the assistant separator, or its start).
        header: format of a role header; ``{role}`` is replaced by the role name.
        message_sep: text between a header and its message.
        media_last: media placeholder lines that open a human message (GroundingGPT's
            ``<image>\n`` before the question) are written after its text instead, so the
            media tokens come after the question and can attend to it.
        closing: text written once after the last turn of a training conversation, trained
            with it (never part of a prompt); "" for none.
    """

    name: str
    system: str
    roles: tuple[str, str]
    system_sep: str
    seps: tuple[str, str]
    stop: str
    header: str = "{role}:"
    message_sep: str = " "
    media_last: bool = False
    closing: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Template.name must not be empty")
        if len(self.roles) != 2 or not all(self.roles) or self.roles[0] == self.roles[1]:
            raise ValueError(f"Template.roles of {self.name!r} must be two different names, got {self.roles}")
        if len(self.seps) != 2:
            raise ValueError(f"Template.seps of {self.name!r} must be (human_sep, assistant_sep)")
        if "{role}" not in self.header:
            raise ValueError(f"Template.header of {self.name!r} must contain '{{role}}', got {self.header!r}")
        if not self.stop or self.stop not in self.seps[1]:
            raise ValueError(f"Template.stop of {self.name!r} must occur in the assistant separator")

    def role_header(self, role: str) -> str:
        """The header written before a message of ``role`` ("human" / "assistant")."""
        return self.header.format(role=self.roles[_role_index(role)])


PieceKind = Literal["system", "header", "message", "sep"]


@dataclass(frozen=True)
class Piece:
    """A span of rendered text.

    Attributes:
        text: the exact characters.
        trained: whether the loss covers this text.
        kind: "system", "header", "message" or "sep".
        turn: index of the turn it belongs to (-1 for the system piece).
    """

    text: str
    trained: bool
    kind: PieceKind
    turn: int


def _role_index(role: str) -> int:
    return 0 if role == HUMAN else 1


def check_turns(turns: Sequence[Turn], prompt: bool = False) -> None:
    """Raise ConversationError unless turns alternate human, assistant, ... from a human turn.

    Args:
        turns: the conversation.
        prompt: True for an inference prompt, which may end on either role; a training
            conversation must end with an assistant turn (the last thing it trains).
    """
    if not turns:
        raise ConversationError("conversation has no turns")
    for i, turn in enumerate(turns):
        expected = HUMAN if i % 2 == 0 else ASSISTANT
        if turn.role != expected:
            raise ConversationError(
                f"turn {i}: roles must alternate starting with {HUMAN!r}; expected {expected!r}, got {turn.role!r}"
            )
    if not prompt and turns[-1].role != ASSISTANT:
        raise ConversationError(f"a training conversation must end with an {ASSISTANT!r} turn, it ends with {HUMAN!r}")


def render(template: Template, turns: Sequence[Turn], prompt: bool = False) -> list[Piece]:
    """Render a conversation into pieces; the single source of training and inference text.

    Args:
        template: the template to write with.
        turns: alternating turns starting with a human turn.
        prompt: False: the training text, which must end with an assistant turn.
            True: the inference prompt, ending with the assistant header; a final assistant
            turn, if any, is dropped (its header kept).

    Returns:
        Pieces whose texts concatenate to the rendered conversation.
    """
    check_turns(turns, prompt=prompt)
    pieces = [Piece(template.system + template.system_sep, False, "system", -1)]
    for i, turn in enumerate(turns):
        trained = turn.role == ASSISTANT
        pieces.append(Piece(template.role_header(turn.role), False, "header", i))
        if prompt and i == len(turns) - 1 and trained:
            return pieces
        text = _media_last(turn.value) if template.media_last and turn.role == HUMAN else turn.value
        pieces.append(Piece(template.message_sep + text, trained, "message", i))
        pieces.append(Piece(template.seps[_role_index(turn.role)], trained, "sep", i))
    if prompt:  # ends with a human turn: open the assistant's answer
        pieces.append(Piece(template.role_header(ASSISTANT), False, "header", len(turns)))
    elif template.closing:
        pieces.append(Piece(template.closing, True, "sep", len(turns) - 1))
    return pieces


_LEADING_PLACEHOLDERS = re.compile(r"\A((?:<[a-z_]+>\n)+)(?=\S)")


def _media_last(message: str) -> str:
    """``"<image>\n<sound>\nQ"`` -> ``"Q\n<image>\n<sound>"``; other messages unchanged."""
    match = _LEADING_PLACEHOLDERS.match(message)
    if not match:
        return message
    return message[match.end():] + "\n" + match.group(1).rstrip("\n")


def render_text(template: Template, turns: Sequence[Turn]) -> str:
    """The training text of a conversation (all pieces joined)."""
    return "".join(p.text for p in render(template, turns))


def render_prompt(template: Template, turns: Sequence[Turn]) -> str:
    """The inference prompt: everything up to and including the last assistant header."""
    return "".join(p.text for p in render(template, turns, prompt=True))


_SYSTEM_HUMAN = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
_SYSTEM_USER = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

_TEMPLATES: dict[str, Template] = {}


def register_template(template: Template) -> Template:
    """Make a template available to recipes under ``template.name``."""
    if template.name in _TEMPLATES and _TEMPLATES[template.name] != template:
        raise ValueError(f"conversation template {template.name!r} is registered twice")
    _TEMPLATES[template.name] = template
    return template


def get_template(name: str) -> Template:
    """The registered template ``name``; ValueError lists the known names."""
    if name not in _TEMPLATES:
        raise ValueError(f"unknown conversation template {name!r}; known: {template_names()}")
    return _TEMPLATES[name]


def template_names() -> list[str]:
    return sorted(_TEMPLATES)


register_template(
    Template(
        name="groundinggpt",
        system=_SYSTEM_HUMAN,
        roles=("Human", "Assistant"),
        system_sep="\n\n###",
        header=" {role}:",
        seps=("\n###", "\n###"),
        stop="###",
    )
)
register_template(
    # GroundingGPT's layout without its system prompt: for small decoders trained from
    # scratch (the tiny recipes), where the 35-token prompt is a quarter of a sample's
    # tokens and says nothing the model can use.
    Template(
        name="groundinggpt_short",
        system="",
        roles=("Human", "Assistant"),
        system_sep="###",
        header=" {role}:",
        seps=("\n###", "\n###"),
        stop="###",
    )
)
register_template(
    # groundinggpt_short with the question before the media: a tiny decoder trained from
    # scratch learnt to find the named shape sooner when the image tokens could read the
    # question (REC only, 28.8k samples: acc@0.5 0.59 question first at batch 8, 0.47
    # image first at batch 16; with one shape in the image 0.95).
    replace(get_template("groundinggpt_short"), name="groundinggpt_short_media_last", media_last=True)
)
register_template(
    # The released GroundingGPT-7B's training text (lego/train/train.py: header = system +
    # "\n\n"; each turn "### " + role + ": " + value + "\n"; then a final "### " that is
    # not masked): groundinggpt plus that last "### "'s trailing space. Its "###" is already
    # the assistant separator here, so only " " remains to close the conversation.
    replace(get_template("groundinggpt"), name="groundinggpt_release", closing=" ")
)
register_template(
    Template(
        name="llava_v0",
        system=_SYSTEM_HUMAN,
        roles=("Human", "Assistant"),
        system_sep="###",
        seps=("###", "###"),
        stop="###",
    )
)
register_template(
    Template(
        name="vicuna_v1",
        system=_SYSTEM_USER,
        roles=("USER", "ASSISTANT"),
        system_sep=" ",
        seps=(" ", "</s>"),
        stop="</s>",
    )
)
