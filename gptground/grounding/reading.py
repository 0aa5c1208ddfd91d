"""Low-level reading of a notation from model output, with precise failure reasons.

Every pattern here has bounded repetitions and no nested quantifiers, so matching at one
position costs a bounded number of steps and a whole scan stays linear in the text length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# A number as a model may write it: "0.5", ".5", "-3", "1e-3", and the non-finite words
# float() accepts, so that "nan" is reported as non-finite rather than as garbage.
# A bare trailing "." belongs to the number only at the very end of the text (a truncated
# "0."); elsewhere it is the full stop of a sentence such as "from 3 to 8. Then ...".
NUMBER = re.compile(
    r"[-+]?(?:\d{1,20}(?:\.\d{1,20}|\.\Z)?|\.\d{1,20})(?:[eE][-+]?\d{1,3})?|[-+]?(?:nan|inf(?:inity)?)",
    re.IGNORECASE,
)
NUMBER_AHEAD = r"(?=[-+]?(?:[\d.]|nan|inf))"
"""Lookahead: a number (or an attempt at one) starts here."""

_SHOWN_CHARS = 12


class ReadError(Exception):
    """A notation started at ``offset`` but could not be read.

    Raised and caught inside parsing only; callers see a ``ParseFailure`` instead.
    """

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True)
class RawValue:
    """The numbers of one box or span exactly as written, before any conversion."""

    numbers: tuple[float, ...]
    start: int
    end: int


@dataclass(frozen=True)
class RawGroup:
    """One notation group (e.g. ``[..;..]`` or ``<object>..</object>``) and its values."""

    values: tuple[RawValue, ...]
    start: int
    end: int


class Cursor:
    """Reads a notation left to right, raising ``ReadError`` at the first mismatch."""

    def __init__(self, text: str, pos: int, notation: str) -> None:
        self.text = text
        self.pos = pos
        self.notation = notation

    def accept(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        """Consume ``pattern`` if it matches here; otherwise leave the cursor alone."""
        match = pattern.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()
        return match

    def expect(self, pattern: re.Pattern[str], what: str, shape: str | None = None) -> re.Match[str]:
        """Consume ``pattern`` or fail, saying what was expected and what was found.

        Args:
            pattern: what must come next.
            what: its description for the failure reason.
            shape: the literal token expected, ``D`` standing for any digit (e.g.
                ``"<patch_index_DDDD>"``); when the text ends partway through it, the
                failure is reported as truncation.
        """
        match = self.accept(pattern)
        if match is None:
            raise self.error(f"expected {what}", shape)
        return match

    def number(self) -> float:
        """Consume one finite number."""
        start = self.pos
        token = self.expect(NUMBER, "a number").group()
        value = float(token)
        if not math.isfinite(value):
            raise ReadError(start, f"non-finite value {token!r} in the {self.notation} notation")
        return value

    def integer(self) -> int:
        """Consume one number whose value is a whole number ("43", also "43.0")."""
        start = self.pos
        value = self.number()
        if not value.is_integer():
            raise ReadError(start, f"expected an integer in the {self.notation} notation, got {value:g}")
        return int(value)

    def error(self, expectation: str, shape: str | None = None) -> ReadError:
        """A failure here: truncation when the text ends, else what was found instead."""
        rest = self.text[self.pos :].lstrip(" \t")
        if not rest or (shape is not None and _is_partial(rest, shape)):
            return ReadError(self.pos, f"text ends inside the {self.notation} notation (truncated output?)")
        found = self.text[self.pos : self.pos + _SHOWN_CHARS]
        return ReadError(self.pos, f"{expectation} in the {self.notation} notation, found {found!r}")


def _is_partial(rest: str, shape: str) -> bool:
    """Whether ``rest`` is a proper prefix of ``shape`` (``D`` in the shape: any digit)."""
    if len(rest) >= len(shape):
        return False
    return all(c.isdigit() if s == "D" else c == s for c, s in zip(rest, shape, strict=False))
