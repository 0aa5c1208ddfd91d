"""Where a pixel box lies in 0-1 coordinates, with or without square padding.

GroundingGPT and Shikra (like LLaVA) pad the image to a square before encoding it, so their
0-1 coordinates are fractions of the *padded square*. LLaVA's ``expand2square`` makes a
square of side ``S = max(W, H)`` and pastes the image at offset ``(S - W) // 2`` on x or
``(S - H) // 2`` on y (integer division: with an odd difference the extra pixel of padding
goes to the right or bottom). MiniGPT-v2, Kosmos-2 and Ferret resize without padding, so
their fractions are of ``W`` and ``H``.

Boxes here are ``(x1, y1, x2, y2)``; image sizes are ``(width, height)`` in pixels.
"""

from __future__ import annotations

from gptground.grounding.types import Box

UnitBox = tuple[float, float, float, float]


def square_side(image_size: tuple[float, float]) -> float:
    """Side in pixels of the padded square: ``max(W, H)``."""
    return max(image_size)


def padding_offset(image_size: tuple[float, float]) -> tuple[float, float]:
    """``(dx, dy)``: pixels of padding added on the left and on the top."""
    width, height = image_size
    side = square_side(image_size)
    return (side - width) // 2, (side - height) // 2


def to_padded_unit(box: Box, image_size: tuple[float, float]) -> UnitBox:
    """Pixel box of the original image -> fractions 0-1 of the padded square."""
    dx, dy = padding_offset(image_size)
    side = square_side(image_size)
    return ((box.x1 + dx) / side, (box.y1 + dy) / side, (box.x2 + dx) / side, (box.y2 + dy) / side)


def from_padded_unit(coords: UnitBox, image_size: tuple[float, float]) -> Box:
    """Fractions 0-1 of the padded square -> pixel box of the original image.

    The result is not clipped: a box drawn in the padding comes back with negative
    coordinates or coordinates beyond ``W``/``H``.
    """
    dx, dy = padding_offset(image_size)
    side = square_side(image_size)
    x1, y1, x2, y2 = coords
    return Box(x1 * side - dx, y1 * side - dy, x2 * side - dx, y2 * side - dy)


def to_unit(box: Box, image_size: tuple[float, float]) -> UnitBox:
    """Pixel box -> fractions 0-1 of the unpadded image's width and height."""
    width, height = image_size
    return (box.x1 / width, box.y1 / height, box.x2 / width, box.y2 / height)


def from_unit(coords: UnitBox, image_size: tuple[float, float]) -> Box:
    """Fractions 0-1 of the unpadded image's width and height -> pixel box (not clipped)."""
    width, height = image_size
    x1, y1, x2, y2 = coords
    return Box(x1 * width, y1 * height, x2 * width, y2 * height)
