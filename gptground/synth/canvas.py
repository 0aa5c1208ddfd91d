"""Rasterising backgrounds and shapes into RGB pixels (shared by images and video frames).

Shapes are drawn without anti-aliasing, so every pixel of a shape has exactly its
palette colour and its bounding box is exactly the shape's box.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from gptground.synth.world import Background, Shape

_NOISE_STD = 8.0  # grey levels, for "noise" backgrounds


def render_background(background: Background, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 pixels of ``background`` for a (width, height) canvas."""
    w, h = size
    a = np.asarray(background.colour_a, dtype=np.float32)
    b = np.asarray(background.colour_b, dtype=np.float32)
    steps = w if background.horizontal else h
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]  # (steps, 1)
    ramp = a + (b - a) * t  # (steps, 3)
    pixels = np.broadcast_to(ramp[None, :, :] if background.horizontal else ramp[:, None, :], (h, w, 3)).copy()
    if background.kind == "noise":
        noise_rng = np.random.default_rng(background.noise_seed)
        pixels += noise_rng.normal(0.0, _NOISE_STD, size=pixels.shape).astype(np.float32)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def draw_shapes(pixels: np.ndarray, shapes: list[Shape] | tuple[Shape, ...]) -> Image.Image:
    """A new RGB image: ``pixels`` (H, W, 3) uint8 with ``shapes`` drawn on top, in order."""
    image = Image.fromarray(pixels, mode="RGB")
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        _draw_shape(draw, shape)
    return image


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    # PIL's bounding coordinates are inclusive; our boxes exclude x2, y2.
    x1, y1, x2, y2 = shape.box[0], shape.box[1], shape.box[2] - 1, shape.box[3] - 1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if shape.kind == "circle":
        draw.ellipse((x1, y1, x2, y2), fill=shape.rgb)
    elif shape.kind == "square":
        draw.rectangle((x1, y1, x2, y2), fill=shape.rgb)
    elif shape.kind == "triangle":
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=shape.rgb)
    elif shape.kind == "diamond":
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=shape.rgb)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}")
