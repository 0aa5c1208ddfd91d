"""One-call helpers over the registry, used across the library (data, eval, API)."""

from __future__ import annotations

from collections.abc import Sequence

from gptground.grounding.format import GroundingFormat
from gptground.grounding.registry import DEFAULT_FORMAT, get_format
from gptground.grounding.result import ParseResult
from gptground.grounding.types import Box, Span

FormatName = str | GroundingFormat


def format_boxes(boxes: Sequence[Box], image_size: tuple[float, float], fmt: FormatName = DEFAULT_FORMAT) -> str:
    """Text of the boxes of one phrase, e.g. ``[0.102, 0.203, 0.512, 0.886]``.

    Args:
        boxes: pixel boxes inside the image.
        image_size: ``(width, height)`` of the original image.
        fmt: format name or instance.
    """
    return get_format(fmt).write_boxes(boxes, image_size)


def format_span(span: Span, duration: float | None, fmt: FormatName = DEFAULT_FORMAT) -> str:
    """Text of one span, e.g. ``{0.09,0.15}``; ``duration`` is the clip length in seconds."""
    return get_format(fmt).write_span(span, duration)


def parse(
    text: str,
    fmt: FormatName = DEFAULT_FORMAT,
    image_size: tuple[float, float] | None = None,
    duration: float | None = None,
) -> ParseResult:
    """Everything grounded in ``text``: phrases, boxes in pixels, spans in seconds, failures."""
    return get_format(fmt).parse(text, image_size=image_size, duration=duration)


def parse_boxes(text: str, image_size: tuple[float, float], fmt: FormatName = DEFAULT_FORMAT) -> list[Box]:
    """All boxes in ``text``, in pixels of the original image (unreadable ones left out)."""
    return parse(text, fmt, image_size=image_size).boxes


def parse_spans(text: str, duration: float | None, fmt: FormatName = DEFAULT_FORMAT) -> list[Span]:
    """All spans in ``text``, in seconds (unreadable ones left out)."""
    return parse(text, fmt, duration=duration).spans
