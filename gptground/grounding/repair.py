"""The two repairs parsing makes to model values: clamping and reordering."""

from __future__ import annotations

import math


def clamp(value: float, low: float, high: float, tolerance: float = 0.0) -> tuple[float, bool]:
    """Move ``value`` into ``[low, high]``.

    Args:
        value: the value as read.
        low: smallest legal value.
        high: largest legal value.
        tolerance: an overrun up to this much is rounding noise of the format (e.g. half a
            quantisation step), clamped without being reported; an overrun equal to it up to
            float error counts as within it (0.8 - 0.75 is a hair over 0.05).

    Returns:
        The clamped value and whether the overrun was large enough to report.
    """
    clamped = min(max(value, low), high)
    overrun = abs(clamped - value)
    return clamped, overrun > tolerance and not math.isclose(overrun, tolerance, rel_tol=1e-9)


def ordered(first: float, second: float) -> tuple[float, float, bool]:
    """``(min, max, swapped)`` of a pair that should be ``first <= second``."""
    if second < first:
        return second, first, True
    return first, second, False
