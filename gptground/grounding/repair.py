"""The two repairs parsing makes to model values: clamping and reordering."""

from __future__ import annotations


def clamp(value: float, low: float, high: float, tolerance: float = 0.0) -> tuple[float, bool]:
    """Move ``value`` into ``[low, high]``.

    Args:
        value: the value as read.
        low: smallest legal value.
        high: largest legal value.
        tolerance: an overrun up to this much is rounding noise of the format (e.g. half a
            quantisation step), clamped without being reported.

    Returns:
        The clamped value and whether the overrun was large enough to report.
    """
    clamped = min(max(value, low), high)
    return clamped, abs(clamped - value) > tolerance


def ordered(first: float, second: float) -> tuple[float, float, bool]:
    """``(min, max, swapped)`` of a pair that should be ``first <= second``."""
    if second < first:
        return second, first, True
    return first, second, False
