"""Which phrase a group of values belongs to.

Two rules cover the formats:

- ``PrecedingText`` (GroundingGPT, Shikra, Ferret, the span formats): the phrase is the
  text right before the values in the same sentence, back to the previous values or the
  previous sentence end (``.``, ``!`` or ``?`` before a space, or a newline), trimmed of
  punctuation, of a leading ``and``/``or``/``then`` and of trailing linking words such as
  ``is``, ``at``, ``in``, ``from`` ("He is at [..]" -> "He"; "the camera in {..}" -> "the
  camera"). Brackets and braces left over from a notation that failed to parse are cut
  off. Values with nothing but such words after the previous values join that phrase, so
  ``a [..][..]``, ``a [..], [..]`` and ``a [..] from {..}`` each give one phrase.
- ``TaggedPhrase`` (MiniGPT-v2 ``<p>..</p>``, Kosmos-2 ``<phrase>..</phrase>``): the phrase
  is the tag's content right before the values; values after only whitespace or the
  format's delimiter join the previous phrase; otherwise they have no phrase.

``PhraseCollector`` applies a rule to a text's groups in order. VTimeLLM's dense captions
put the event after its span ("From 00 to 17, a woman counts money."), which the
preceding-text rule does not attach: such spans come back without a phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gptground.grounding.reading import RawGroup
from gptground.grounding.result import GroundedPhrase, ParsedValue
from gptground.grounding.types import Box, Span

_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")
_NOTATION_CHAR = re.compile(r"[\[\]{}<>]")
_EDGE = " \t\r\n,;:()\"'-–"
_LEADING_WORDS = frozenset({"and", "or", "then"})
_TRAILING_WORDS = frozenset({"is", "are", "was", "were", "at", "in", "from", "during", "between", "within", "located"})


@dataclass(frozen=True)
class PhraseLink:
    """How a group of values attaches to a phrase."""

    joins_previous: bool
    """The values continue the previous group's phrase."""
    text: str | None = None
    """The new phrase (None: the values have no phrase)."""
    start: int | None = None
    """Offset of the new phrase in the text."""


JOIN = PhraseLink(joins_previous=True)
NO_PHRASE = PhraseLink(joins_previous=False)


class PrecedingText:
    """The phrase is the text before the values, in the same sentence."""

    def wrap(self, phrase: str, values: str) -> str:
        """``phrase`` followed by its written values."""
        return f"{phrase} {values}"

    def link(self, text: str, previous_end: int | None, start: int, window: int) -> PhraseLink:
        """Find the phrase of the values at ``start``.

        Args:
            text: the parsed text.
            previous_end: end of the previous group of values, None for the first group.
            start: offset of this group.
            window: how many characters back to look at most.
        """
        low = max(previous_end or 0, start - window)
        segment = text[low:start]
        boundaries = list(_SENTENCE_END.finditer(segment))
        if boundaries:
            low += boundaries[-1].end()
            segment = segment[boundaries[-1].end() :]
        # The remains of a notation that failed to parse are not part of a phrase.
        leftovers = list(_NOTATION_CHAR.finditer(segment))
        if leftovers:
            low += leftovers[-1].end()
            segment = segment[leftovers[-1].end() :]
        first, last = _trim(segment)
        if first < last:
            return PhraseLink(False, segment[first:last], low + first)
        return JOIN if previous_end is not None and not boundaries else NO_PHRASE


class TaggedPhrase:
    """The phrase is the content of an ``open_tag``..``close_tag`` right before the values.

    Args:
        open_tag: e.g. ``"<p>"``.
        close_tag: e.g. ``"</p>"``.
        delimiter: text between two groups of one phrase (MiniGPT-v2's ``<delim>``).
        inner_space: written before the phrase inside the tag (Kosmos-2 writes
            ``<phrase> a snowman</phrase>``, the space belonging to the first word's token).
        gap: written between the closing tag and the values.
    """

    def __init__(
        self, open_tag: str, close_tag: str, delimiter: str = "", inner_space: str = "", gap: str = ""
    ) -> None:
        self.open_tag = open_tag
        self.close_tag = close_tag
        self.delimiter = delimiter
        self.inner_space = inner_space
        self.gap = gap

    def wrap(self, phrase: str, values: str) -> str:
        return f"{self.open_tag}{self.inner_space}{phrase}{self.close_tag}{self.gap}{values}"

    def link(self, text: str, previous_end: int | None, start: int, window: int) -> PhraseLink:
        low = max(previous_end or 0, start - window)
        segment = text[low:start].rstrip()
        if previous_end is not None and segment.strip() in ("", self.delimiter):
            return JOIN
        if not segment.endswith(self.close_tag):
            return NO_PHRASE
        opened = segment.rfind(self.open_tag, 0, len(segment) - len(self.close_tag))
        if opened < 0:
            return NO_PHRASE
        content = segment[opened + len(self.open_tag) : len(segment) - len(self.close_tag)]
        return PhraseLink(False, content.strip() or None, low + opened)


PhraseRule = PrecedingText | TaggedPhrase


def _trim(segment: str) -> tuple[int, int]:
    """Bounds of ``segment`` without edge punctuation and leading/trailing linking words."""
    first, last = 0, len(segment)
    while True:
        before = (first, last)
        while first < last and segment[first] in _EDGE:
            first += 1
        while last > first and segment[last - 1] in _EDGE:
            last -= 1
        words = segment[first:last].split()
        if words and words[0].lower() in _LEADING_WORDS:
            first += len(words[0])
        elif words and words[-1].lower() in _TRAILING_WORDS:
            last -= len(words[-1])
        if (first, last) == before:
            return first, last


class PhraseCollector:
    """Collects a text's converted value groups into phrases, in text order, with a rule."""

    def __init__(self, text: str, rule: PhraseRule, window: int) -> None:
        self.text = text
        self.rule = rule
        self.window = window
        self.phrases: list[GroundedPhrase] = []
        self._previous_end: int | None = None

    def add(self, group: RawGroup, boxes: list[ParsedValue[Box]], spans: list[ParsedValue[Span]]) -> None:
        """Attach a group's converted values to a new phrase or to the previous one.

        A group whose values all failed to convert adds nothing but still ends the text
        the next group's phrase may come from.
        """
        link = self.rule.link(self.text, self._previous_end, group.start, self.window)
        self._previous_end = group.end
        if not boxes and not spans:
            return
        if link.joins_previous and self.phrases:
            phrase = self.phrases[-1]
            phrase.end = group.end
        else:
            start = group.start if link.start is None else link.start
            phrase = GroundedPhrase(link.text, start, group.end)
            self.phrases.append(phrase)
        phrase.parsed_boxes.extend(boxes)
        phrase.parsed_spans.extend(spans)
