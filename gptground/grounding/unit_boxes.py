"""Boxes written as four quantised fractions of the image (padded square or not).

Shared by the bracket notations (GroundingGPT, Shikra, Ferret) and MiniGPT-v2, which differ
only in the characters around the four numbers.
"""

from __future__ import annotations

from gptground.grounding.notation import BoxNotation
from gptground.grounding.padding import (
    from_padded_unit,
    from_unit,
    square_side,
    to_padded_unit,
    to_unit,
)
from gptground.grounding.quantize import Quantizer
from gptground.grounding.reading import RawValue
from gptground.grounding.repair import clamp, ordered
from gptground.grounding.result import Flag
from gptground.grounding.types import Box

# Relative slack on top of half a quantisation step, for float rounding in the pixel maths.
_FLOAT_SLACK = 1e-9


class UnitBoxNotation(BoxNotation):
    """A box as ``x1, y1, x2, y2`` fractions quantised by ``quantizer``.

    Args:
        quantizer: how a fraction becomes the written number.
        padded: fractions of the padded square (GroundingGPT, Shikra) rather than of the
            unpadded width and height.
    """

    def __init__(self, quantizer: Quantizer, padded: bool) -> None:
        self.quantizer = quantizer
        self.padded = padded

    def encode(self, box: Box, image_size: tuple[float, float]) -> list[str]:
        """The four written numbers of a (validated) pixel box."""
        unit = to_padded_unit(box, image_size) if self.padded else to_unit(box, image_size)
        return [self.quantizer.encode(v) for v in unit]

    def to_box(self, raw: RawValue, image_size: tuple[float, float]) -> tuple[Box, frozenset[Flag]]:
        flags: set[Flag] = set()
        unit = [self._decode(v, raw.start, flags) for v in raw.numbers]
        x1, x2, swapped_x = ordered(unit[0], unit[2])
        y1, y2, swapped_y = ordered(unit[1], unit[3])
        if swapped_x or swapped_y:
            flags.add(Flag.SWAPPED)
        to_pixels = from_padded_unit if self.padded else from_unit
        box = self._clip_to_image(to_pixels((x1, y1, x2, y2), image_size), image_size, flags)
        return box, frozenset(flags)

    def _decode(self, value: float, offset: int, flags: set[Flag]) -> float:
        """Written number -> fraction, clamping to the legal written range."""
        self.quantizer.check(value, offset)
        value, clamped = clamp(value, self.quantizer.low, self.quantizer.high)
        if clamped:
            flags.add(Flag.CLAMPED)
        return self.quantizer.decode(value)

    def _clip_to_image(self, box: Box, image_size: tuple[float, float], flags: set[Flag]) -> Box:
        """Cut a box that reaches into the padding or past the edge back to the image.

        An overrun within half a quantisation step is the format's rounding, not a model
        error, so only larger overruns are flagged.
        """
        width, height = image_size
        scale_x = square_side(image_size) if self.padded else width
        scale_y = square_side(image_size) if self.padded else height
        tol_x = scale_x * (self.quantizer.step / 2 + _FLOAT_SLACK)
        tol_y = scale_y * (self.quantizer.step / 2 + _FLOAT_SLACK)
        x1, c1 = clamp(box.x1, 0.0, width, tol_x)
        y1, c2 = clamp(box.y1, 0.0, height, tol_y)
        x2, c3 = clamp(box.x2, 0.0, width, tol_x)
        y2, c4 = clamp(box.y2, 0.0, height, tol_y)
        if c1 or c2 or c3 or c4:
            flags.add(Flag.CLAMPED)
        return Box(x1, y1, x2, y2)
