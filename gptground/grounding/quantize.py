"""How a fraction 0-1 becomes the number a model writes, and back.

Two schemes cover the text-coordinate systems: fixed decimals (GroundingGPT, Shikra:
``0.123``) and integer bins (Ferret 0-999, MiniGPT-v2 0-100). Both systems write bins by
truncation (``int(x / W * N)``); we read a bin back as its centre, which bounds the error by
half a bin (their own evaluation code reads the bin's lower edge, a bias of half a bin
toward the top-left).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gptground.grounding.reading import ReadError


@dataclass(frozen=True)
class DecimalQuantizer:
    """Fractions written with a fixed number of decimals; read back as written."""

    decimals: int
    low: float = 0.0
    high: float = 1.0

    @property
    def step(self) -> float:
        """Quantisation step as a fraction of the reference length."""
        return 10.0**-self.decimals

    def encode(self, fraction: float) -> str:
        return f"{fraction:.{self.decimals}f}"

    def check(self, value: float, offset: int) -> None:
        """Any finite number is a legal decimal (range is handled by clamping)."""

    def decode(self, value: float) -> float:
        return value


@dataclass(frozen=True)
class BinQuantizer:
    """Fractions written as the index of one of ``bins`` equal bins; read as its centre."""

    bins: int
    max_index: int
    """Largest index written: ``bins - 1``, or ``bins`` where the reference writes
    ``int(x / W * bins)`` unclipped, so that ``x == W`` gives ``bins`` (MiniGPT-v2)."""

    @property
    def low(self) -> float:
        return 0.0

    @property
    def high(self) -> float:
        return float(self.max_index)

    @property
    def step(self) -> float:
        return 1.0 / self.bins

    def encode(self, fraction: float) -> str:
        return str(min(math.floor(fraction * self.bins), self.max_index))

    def check(self, value: float, offset: int) -> None:
        """Bins are integers: "12.5" is not an index."""
        if not value.is_integer():
            raise ReadError(offset, f"expected integers 0-{self.max_index}, got {value:g}")

    def decode(self, value: float) -> float:
        return (value + 0.5) / self.bins


Quantizer = DecimalQuantizer | BinQuantizer
