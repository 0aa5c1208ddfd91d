"""Still images of the world: scene sampling and PNG writing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gptground.synth.canvas import draw_shapes, render_background
from gptground.synth.config import ImageWorldConfig
from gptground.synth.world import (
    Background,
    SceneSamplingError,
    Shape,
    place_boxes,
    sample_background,
    sample_looks,
    side_px,
)


@dataclass(frozen=True)
class ImageScene:
    """An image: its (width, height), background and shapes (left to right by box centre)."""

    size: tuple[int, int]
    background: Background
    shapes: tuple[Shape, ...]


def sample_image_scene(rng: np.random.Generator, cfg: ImageWorldConfig, n_shapes: tuple[int, int] | None = None,
                       distinct_colours: bool = False) -> ImageScene:
    """An image whose every shape has a unique noun phrase (see ``world.noun_phrase``).

    Args:
        n_shapes: (min, max) shape count; defaults to the config's.
        distinct_colours: every shape gets its own colour and there is no size contrast.
    """
    low, high = n_shapes or (cfg.min_shapes, cfg.max_shapes)
    size = cfg.sizes[rng.integers(len(cfg.sizes))]
    n = int(rng.integers(low, high + 1))
    contrast = not distinct_colours and n >= 2 and rng.random() < cfg.size_contrast_prob
    looks = sample_looks(rng, n, cfg.colours, cfg.kinds, size_contrast=contrast, distinct_colours=distinct_colours)
    short = min(size)
    sides = [side_px(rng, cfg.small_side if s == "small" else cfg.large_side, short, cfg.grid_px) for _, _, s in looks]
    boxes = place_boxes(rng, sides, (0, 0, size[0], size[1]), cfg.grid_px)
    if boxes is None:
        raise SceneSamplingError(f"cannot place {n} shapes of sides {sides} px in a {size[0]}x{size[1]} image: "
                                 "lower image.max_shapes or image.large_side")
    shapes = [Shape(kind=k, colour=c, size=s, box=b) for (c, k, s), b in zip(looks, boxes)]
    shapes.sort(key=lambda sh: (sh.box[0] + sh.box[2], sh.box[1] + sh.box[3]))
    background = sample_background(rng, cfg.backgrounds, cfg.colours)
    return ImageScene(size=size, background=background, shapes=tuple(shapes))


def render_image(scene: ImageScene) -> Image.Image:
    """The scene as an RGB PIL image."""
    return draw_shapes(render_background(scene.background, scene.size), scene.shapes)


def write_image(scene: ImageScene, path: Path) -> None:
    """Render ``scene`` to a PNG at ``path`` (PNG: lossless, so pixel checks are exact)."""
    render_image(scene).save(path, format="PNG", optimize=False)
