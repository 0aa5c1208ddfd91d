"""The contract of a notation: how one kind of value (box or span) looks in text.

A ``GroundingFormat`` is a box notation, a span notation and a phrase rule. Each notation
writes values, recognises where an attempt at it starts (``opener``), reads one group of
values from there, and converts what it read into pixels or seconds, repairing and flagging
what it can and raising ``ReadError`` for what it cannot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from gptground.grounding.reading import RawGroup, RawValue
from gptground.grounding.result import Flag
from gptground.grounding.types import Box, Span


class Notation(ABC):
    """How one kind of value is written; shared by box and span notations."""

    label: str
    """Short human name used in failure reasons, e.g. ``"[x1, y1, x2, y2]"``."""
    opener: str
    """Regex source (no named groups) matching where an attempt at this notation starts."""

    @abstractmethod
    def read_group(self, text: str, pos: int) -> RawGroup:
        """Read one group of values starting at ``pos`` (where ``opener`` matched).

        Raises:
            ReadError: where and why the text stops being this notation.
        """


class BoxNotation(Notation):
    """A way of writing boxes."""

    @abstractmethod
    def write(self, boxes: Sequence[Box], image_size: tuple[float, float]) -> str:
        """Text for one or more boxes of one phrase (already validated by the caller)."""

    @abstractmethod
    def to_box(self, raw: RawValue, image_size: tuple[float, float]) -> tuple[Box, frozenset[Flag]]:
        """Pixel box for the numbers read, with the repairs made.

        Raises:
            ReadError: when the numbers cannot be a box in this notation.
        """


class SpanNotation(Notation):
    """A way of writing time spans."""

    needs_duration: bool
    """Whether writing and reading need the clip length (relative notations)."""

    @abstractmethod
    def write(self, span: Span, duration: float | None) -> str:
        """Text for one span (already validated by the caller)."""

    @abstractmethod
    def to_span(self, raw: RawValue, duration: float | None) -> tuple[Span, frozenset[Flag]]:
        """Span in seconds for the numbers read, with the repairs made.

        Raises:
            ReadError: when the numbers cannot be a span in this notation.
        """
