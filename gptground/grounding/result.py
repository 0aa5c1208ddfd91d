"""What parsing returns: grounded phrases, flagged values and reported failures."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gptground.grounding.types import Box, Span

V = TypeVar("V", Box, Span)


class Flag(enum.Enum):
    """A repair the parser made to a value the model wrote."""

    SWAPPED = "swapped"
    """A reversed pair (``x2 < x1``, ``y2 < y1`` or ``end < start``) was put in order."""
    CLAMPED = "clamped"
    """A value outside its legal range (a fraction above 1, a negative time, a box in the
    padding) was moved to the nearest legal value."""


@dataclass(frozen=True)
class ParsedValue(Generic[V]):
    """One box or span read from the text, with where it was and what was repaired."""

    value: V
    start: int
    """Character offset of the value's notation in the parsed text (the whole ``[..]`` or
    ``<object>..</object>`` when it holds only this value)."""
    end: int
    """Offset one past the notation's last character."""
    flags: frozenset[Flag] = frozenset()


@dataclass
class GroundedPhrase:
    """A phrase and the boxes and spans the text attaches to it."""

    phrase: str | None
    """The phrase text, stripped; None when the format's rule finds no phrase."""
    start: int
    """Offset of the phrase (or of its first value when there is no phrase)."""
    end: int
    """Offset one past the last value's notation."""
    parsed_boxes: list[ParsedValue[Box]] = field(default_factory=list)
    parsed_spans: list[ParsedValue[Span]] = field(default_factory=list)

    @property
    def boxes(self) -> list[Box]:
        return [p.value for p in self.parsed_boxes]

    @property
    def spans(self) -> list[Span]:
        return [p.value for p in self.parsed_spans]

    @property
    def flags(self) -> frozenset[Flag]:
        """Every repair made to any of this phrase's values."""
        return frozenset().union(*(p.flags for p in [*self.parsed_boxes, *self.parsed_spans]))


@dataclass(frozen=True)
class ParseFailure:
    """Something that looked like a box or span but could not be read."""

    offset: int
    """Character offset in the parsed text where the problem starts."""
    snippet: str
    """Up to 40 characters of text from ``offset``."""
    reason: str


@dataclass
class ParseResult:
    """Everything read from one text, in text order."""

    text: str
    phrases: list[GroundedPhrase]
    failures: list[ParseFailure]

    @property
    def boxes(self) -> list[Box]:
        """All boxes of all phrases, in text order."""
        return [box for phrase in self.phrases for box in phrase.boxes]

    @property
    def spans(self) -> list[Span]:
        """All spans of all phrases, in text order."""
        return [span for phrase in self.phrases for span in phrase.spans]

    @property
    def ok(self) -> bool:
        """True when nothing failed to parse (values may still carry flags)."""
        return not self.failures


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on the work one parse does, so hostile or runaway output stays cheap."""

    max_chars: int = 100_000
    """Only this many leading characters are scanned; the rest is reported as a failure."""
    max_groups: int = 1_000
    """Scanning stops after this many value groups (``[..]``, ``{<..>}``, ``<object>..``)."""
    max_failures: int = 100
    """Scanning stops after this many failures."""
    phrase_window: int = 200
    """How many characters before a value the phrase rules look at."""

    def __post_init__(self) -> None:
        for name in ("max_chars", "max_groups", "max_failures", "phrase_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ParseLimits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS = ParseLimits()
