"""Typed grounding values: a box in pixels and a span in seconds.

Every text format converts to and from these, so the rest of the library never handles
normalised or quantised coordinates directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels of the original (unpadded) image.

    ``(x1, y1)`` is the top-left corner and ``(x2, y2)`` the bottom-right corner; no
    +1-pixel convention (a box from 0 to 10 is 10 pixels wide).
    """

    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        """A box from COCO-style ``(x, y, width, height)`` pixels."""
        return cls(x, y, x + w, y + h)

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    def clip(self, image_size: tuple[float, float]) -> Box:
        """This box cut to the image ``[0, W] x [0, H]``.

        Annotations often overrun the image by a pixel (COCO ``x + w`` rounding); the
        writers refuse such boxes, so data converters clip them explicitly with this.

        Args:
            image_size: ``(width, height)`` in pixels.
        """
        width, height = image_size
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )


@dataclass(frozen=True)
class Span:
    """A time interval in seconds from the start of the clip."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)

    def as_list(self) -> list[float]:
        return [self.start, self.end]

    def clip(self, duration: float) -> Span:
        """This span cut to the clip ``[0, duration]`` seconds."""
        return Span(min(max(self.start, 0.0), duration), min(max(self.end, 0.0), duration))
