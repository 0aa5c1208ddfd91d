"""Time-span notations: fractions ``{t1,t2}``, seconds, and VTimeLLM frame indices."""

from __future__ import annotations

import math
import re

from gptground.grounding.notation import SpanNotation
from gptground.grounding.reading import NUMBER, NUMBER_AHEAD, Cursor, RawGroup, RawValue
from gptground.grounding.repair import clamp, ordered
from gptground.grounding.result import Flag
from gptground.grounding.types import Span

_UNIT = r"(?:seconds?|secs?|s)\b"
_UNIT_AFTER = re.compile(r"[ \t]{0,3}" + _UNIT, re.IGNORECASE)


def _repair(
    first: float, second: float, low: float, high: float, tolerance: float = 0.0
) -> tuple[float, float, frozenset[Flag]]:
    """Clamp both ends to ``[low, high]`` and put them in order, flagging what changed."""
    flags = set()
    first, clamped_first = clamp(first, low, high, tolerance)
    second, clamped_second = clamp(second, low, high, tolerance)
    if clamped_first or clamped_second:
        flags.add(Flag.CLAMPED)
    first, second, swapped = ordered(first, second)
    if swapped:
        flags.add(Flag.SWAPPED)
    return first, second, frozenset(flags)


class FractionSpanNotation(SpanNotation):
    """GroundingGPT's ``{t1,t2}``: fractions 0-1 of the clip length, fixed decimals.

    Args:
        decimals: digits after the point (GroundingGPT: 2).
        separator: written between the two numbers; reading accepts any spacing.
    """

    label = "{t1,t2}"
    opener = r"\{[ \t]{0,3}" + NUMBER_AHEAD
    needs_duration = True
    _OPEN = re.compile(r"\{[ \t]{0,3}")
    _SEP = re.compile(r"[ \t]{0,3},[ \t]{0,3}")
    _CLOSE = re.compile(r"[ \t]{0,3}\}")

    def __init__(self, decimals: int = 2, separator: str = ",") -> None:
        self.decimals = decimals
        self.separator = separator

    def write(self, span: Span, duration: float | None) -> str:
        start, end = (f"{t / duration:.{self.decimals}f}" for t in (span.start, span.end))
        return "{" + start + self.separator + end + "}"

    def read_group(self, text: str, pos: int) -> RawGroup:
        cursor = Cursor(text, pos, self.label)
        cursor.expect(self._OPEN, "'{'")
        first = cursor.number()
        cursor.expect(self._SEP, "',' between the two times")
        second = cursor.number()
        cursor.expect(self._CLOSE, "'}' after two times")
        return RawGroup((RawValue((first, second), pos, cursor.pos),), pos, cursor.pos)

    def to_span(self, raw: RawValue, duration: float | None) -> tuple[Span, frozenset[Flag]]:
        start, end, flags = _repair(*raw.numbers, low=0.0, high=1.0)
        return Span(start * duration, end * duration), flags


class SecondsSpanNotation(SpanNotation):
    """Seconds in words: written ``from 3.2 to 7.9 seconds``.

    Reads ``from 3.2 to 7.9 [seconds]`` and ``3.2 - 7.9 [seconds]`` (also ``3.2-7.9``, an
    en dash, and the units ``s``, ``sec``, ``secs``, ``second``). The duration, when given,
    is only used to clamp spans that run past the end of the clip.

    Args:
        decimals: digits after the point when writing.
    """

    label = "from t1 to t2 seconds"
    opener = (
        r"(?<![\w.])(?:from[ \t]{1,3}(?="
        + NUMBER.pattern
        + r"[ \t]{0,3}(?:"
        + _UNIT
        + r")?[ \t]{0,3}to\b)|(?=\d[\d.]{0,20}[ \t]{0,3}(?:"
        + _UNIT
        + r")?[ \t]{0,3}[-–][ \t]{0,3}\d))"
    )
    needs_duration = False
    _FROM = re.compile(r"from[ \t]{1,3}", re.IGNORECASE)
    _TO = re.compile(r"[ \t]{1,3}to\b[ \t]{0,3}", re.IGNORECASE)
    _DASH = re.compile(r"[ \t]{0,3}[-–][ \t]{0,3}")

    def __init__(self, decimals: int = 1) -> None:
        self.decimals = decimals

    def write(self, span: Span, duration: float | None) -> str:
        return f"from {span.start:.{self.decimals}f} to {span.end:.{self.decimals}f} seconds"

    def read_group(self, text: str, pos: int) -> RawGroup:
        cursor = Cursor(text, pos, self.label)
        worded = cursor.accept(self._FROM) is not None
        first = cursor.number()
        cursor.accept(_UNIT_AFTER)
        if worded:
            cursor.expect(self._TO, "'to'")
        else:
            cursor.expect(self._DASH, "'-'")
        second = cursor.number()
        cursor.accept(_UNIT_AFTER)
        return RawGroup((RawValue((first, second), pos, cursor.pos),), pos, cursor.pos)

    def to_span(self, raw: RawValue, duration: float | None) -> tuple[Span, frozenset[Flag]]:
        high = math.inf if duration is None else duration
        # Writing rounds to `decimals`, so an end up to half a step past the clip is rounding.
        start, end, flags = _repair(*raw.numbers, low=0.0, high=high, tolerance=0.5 * 10.0**-self.decimals)
        return Span(start, end), flags


class FrameIndexSpanNotation(SpanNotation):
    """VTimeLLM's frame indices: ``from 05 to 43`` out of ``frames`` (100) sampled frames.

    Convention (VTimeLLM's, kept so its checkpoints and numbers carry over): a time ``t``
    is written as ``i = min(round(t / duration * frames), frames - 1)``, zero-padded to two
    digits, for the start *and* the end; ``i`` is read back as ``i / frames * duration`` for
    both. Index ``frames`` does not exist, so an end in the last half frame
    (``t > 0.995 * duration``) is written 99 and read back as ``0.99 * duration``: a round
    trip is within half a frame (``duration / 200``) except there, where it is within one
    frame (``duration / 100``).

    Reads ``from 05 to 43``, ``between 05 and 43`` and ``05 to 43``.

    Args:
        frames: number of uniformly sampled frames the indices count.
    """

    label = "from NN to NN"
    # After "from"/"between" any number is an attempt (so "from 5.5 to 9" is reported);
    # bare, only whole numbers are, so prose like "version 1.5 and 2" is left alone.
    opener = (
        r"(?<![\w.])(?:(?:from|between)[ \t]{1,3}(?=[-+]?[\d.]{1,20}[ \t]{1,3}(?:to|and)\b)"
        r"|(?=\d{1,3}[ \t]{1,3}(?:to|and)\b))"
    )
    needs_duration = True
    _FROM = re.compile(r"(?:from|between)[ \t]{1,3}", re.IGNORECASE)
    _TO = re.compile(r"[ \t]{1,3}(?:to|and)\b[ \t]{0,3}", re.IGNORECASE)

    def __init__(self, frames: int = 100) -> None:
        self.frames = frames
        self.digits = len(str(frames - 1))

    def write(self, span: Span, duration: float | None) -> str:
        first, second = (min(round(t / duration * self.frames), self.frames - 1) for t in span.as_list())
        return f"from {first:0{self.digits}d} to {second:0{self.digits}d}"

    def read_group(self, text: str, pos: int) -> RawGroup:
        cursor = Cursor(text, pos, self.label)
        cursor.accept(self._FROM)
        first = cursor.integer()
        cursor.expect(self._TO, "'to'")
        second = cursor.integer()
        return RawGroup((RawValue((float(first), float(second)), pos, cursor.pos),), pos, cursor.pos)

    def to_span(self, raw: RawValue, duration: float | None) -> tuple[Span, frozenset[Flag]]:
        first, second, flags = _repair(*raw.numbers, low=0.0, high=float(self.frames - 1))
        return Span(first / self.frames * duration, second / self.frames * duration), flags
