"""Validation of the caller's arguments (image size, duration, values to write).

These are programming or data errors on the caller's side, so they raise ``ValueError``
with the offending value in the message. Model output is never checked here: parsing
reports problems in its result instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gptground.grounding.types import Box, Span


def check_image_size(image_size: Sequence[float]) -> tuple[float, float]:
    """Return ``image_size`` as ``(width, height)`` after checking it.

    Raises:
        ValueError: if it is not two finite numbers greater than zero.
    """
    if len(image_size) != 2:
        raise ValueError(f"image_size must be (width, height), got {image_size!r}")
    width, height = (float(v) for v in image_size)
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise ValueError(f"image_size must be positive finite (width, height) pixels, got {image_size!r}")
    return width, height


def check_duration(duration: float) -> float:
    """Return ``duration`` in seconds after checking it is finite and greater than zero.

    Raises:
        ValueError: otherwise.
    """
    duration = float(duration)
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive finite number of seconds, got {duration!r}")
    return duration


def check_box_in_image(box: Box, image_size: tuple[float, float]) -> None:
    """Check that a box to be written is finite, ordered and inside the image.

    Raises:
        ValueError: naming the box and the image size; ``Box.clip`` fixes overruns.
    """
    width, height = image_size
    values = box.as_list()
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"box {box} has a non-finite coordinate")
    if box.x2 < box.x1 or box.y2 < box.y1:
        raise ValueError(f"box {box} is reversed: need x1 <= x2 and y1 <= y2")
    if min(values) < 0 or box.x2 > width or box.y2 > height:
        raise ValueError(
            f"box {box} lies outside the {width:g}x{height:g} image; clip it first with box.clip(image_size)"
        )


def check_span_in_clip(span: Span, duration: float | None) -> None:
    """Check that a span to be written is finite, ordered and inside ``[0, duration]``.

    Args:
        span: the span in seconds.
        duration: clip length in seconds, or None to check only ``start >= 0``.

    Raises:
        ValueError: naming the span and the duration; ``Span.clip`` fixes overruns.
    """
    if not (math.isfinite(span.start) and math.isfinite(span.end)):
        raise ValueError(f"span {span} has a non-finite time")
    if span.end < span.start:
        raise ValueError(f"span {span} is reversed: need start <= end")
    if span.start < 0 or (duration is not None and span.end > duration):
        limit = f"[0, {duration:g}] s" if duration is not None else "t >= 0"
        raise ValueError(f"span {span} lies outside {limit}; clip it first with span.clip(duration)")


def check_not_empty(values: Sequence[object], what: str) -> None:
    """Raise ``ValueError`` if there is nothing to write."""
    if len(values) == 0:
        raise ValueError(f"{what} is empty: nothing to write")
