"""The objects of the synthetic world and how scenes are sampled from them.

A scene is plain data (frozen dataclasses) sampled from a ``numpy`` Generator; rendering
lives in ``canvas``, ``images``, ``videos`` and ``audio``. Every sampler draws only from
the generator it is given, so one seed gives one world.

Boxes are ``(x1, y1, x2, y2)`` integer pixels with exclusive ``x2, y2`` (the convention of
``gptground.grounding.Box``: a box from 0 to 10 is 10 pixels wide).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gptground.synth.vocabulary import PALETTE

PixelBox = tuple[int, int, int, int]

# Muted background colours: grey levels with a light tint, far from every palette colour.
_BACKGROUND_GREY = (60, 170)
_BACKGROUND_TINT = 15
_MIN_BACKGROUND_DISTANCE = 90.0  # Euclidean RGB distance to any shape colour
_GAP_PX = 2  # empty pixels kept between two shapes, so their boxes never touch


class SceneSamplingError(RuntimeError):
    """The config leaves no room for a scene (e.g. too many large shapes for the image)."""


@dataclass(frozen=True)
class Shape:
    """One flat-coloured shape filling (a circle/triangle/diamond inscribed in) its box."""

    kind: str
    colour: str
    size: str
    box: PixelBox

    @property
    def rgb(self) -> tuple[int, int, int]:
        return PALETTE[self.colour]

    def moved_to(self, box: PixelBox) -> Shape:
        return replace(self, box=box)

    def recoloured(self, colour: str) -> Shape:
        return replace(self, colour=colour)


@dataclass(frozen=True)
class Background:
    """A muted background: flat, a linear gradient from ``colour_a`` to ``colour_b``, or
    ``colour_a`` with per-pixel Gaussian noise drawn from ``noise_seed``."""

    kind: str
    colour_a: tuple[int, int, int]
    colour_b: tuple[int, int, int]
    horizontal: bool
    noise_seed: int


def noun_phrase(shape: Shape, scene: tuple[Shape, ...] | list[Shape]) -> str:
    """'red circle'; 'small red circle' when the scene has another shape of its colour and kind.

    Scenes are sampled so that this phrase always names exactly one shape.
    """
    twin = any(o != shape and o.colour == shape.colour and o.kind == shape.kind for o in scene)
    return f"{shape.size} {shape.colour} {shape.kind}" if twin else f"{shape.colour} {shape.kind}"


def sample_looks(rng: np.random.Generator, n: int, colours: tuple[str, ...], kinds: tuple[str, ...],
                 size_contrast: bool = False, distinct_colours: bool = False) -> list[tuple[str, str, str]]:
    """``n`` (colour, kind, size) triples whose noun phrases are unique in the scene.

    Args:
        size_contrast: the first two shapes share colour and kind and differ in size
            (needs ``n >= 2``), so naming either needs its size word.
        distinct_colours: every shape has its own colour (sound_loc maps colour -> pitch).
    """
    if distinct_colours:
        picked = rng.choice(len(colours), size=n, replace=False)
        return [(colours[i], kinds[rng.integers(len(kinds))], _size_word(rng)) for i in picked]
    combos = [(c, k) for c in colours for k in kinds]
    n_unique = n - 1 if size_contrast else n
    picked = [combos[i] for i in rng.choice(len(combos), size=n_unique, replace=False)]
    looks = [(c, k, _size_word(rng)) for c, k in picked]
    if size_contrast:
        colour, kind, _ = looks[0]
        looks[0] = (colour, kind, "small")
        looks.insert(1, (colour, kind, "large"))
    return looks


def _size_word(rng: np.random.Generator) -> str:
    return "small" if rng.random() < 0.5 else "large"


def side_px(rng: np.random.Generator, fraction: tuple[float, float], short_side: int, grid: int) -> int:
    """A shape side in pixels: a multiple of ``grid`` within ``fraction`` of ``short_side``."""
    low, high = round(fraction[0] * short_side), round(fraction[1] * short_side)
    choices = [s for s in range(low, high + 1) if s % grid == 0]
    if not choices:  # the range holds no multiple of the grid: take the nearest one
        choices = [max(grid, grid * round((low + high) / 2 / grid))]
    return int(choices[rng.integers(len(choices))])


def place_boxes(rng: np.random.Generator, sides: list[int], region: PixelBox, grid: int,
                avoid: tuple[PixelBox, ...] = (), attempts: int = 50) -> list[PixelBox] | None:
    """Square boxes of the given sides inside ``region``, apart from each other and ``avoid``.

    Corners sit on multiples of ``grid`` where the region allows it. Returns ``None`` when
    no layout was found in ``attempts`` tries (the caller decides whether that is an error).
    """
    order = sorted(range(len(sides)), key=lambda i: -sides[i])  # big ones first: fewer dead ends
    for _ in range(attempts):
        boxes: dict[int, PixelBox] = {}
        for i in order:
            free = _free_corners(sides[i], region, grid, list(avoid) + list(boxes.values()))
            if len(free) == 0:
                break
            x, y = free[rng.integers(len(free))]
            boxes[i] = (int(x), int(y), int(x) + sides[i], int(y) + sides[i])
        else:
            return [boxes[i] for i in range(len(sides))]
    return None


def random_box(rng: np.random.Generator, side: int, region: PixelBox, grid: int) -> PixelBox:
    """A ``side`` x ``side`` box anywhere in ``region`` (which must be at least that large)."""
    x = _grid_positions(region[0], region[2] - side, grid)
    y = _grid_positions(region[1], region[3] - side, grid)
    if len(x) == 0 or len(y) == 0:
        raise SceneSamplingError(f"a {side} px shape does not fit in region {region}")
    x1, y1 = int(x[rng.integers(len(x))]), int(y[rng.integers(len(y))])
    return (x1, y1, x1 + side, y1 + side)


def _free_corners(side: int, region: PixelBox, grid: int, taken: list[PixelBox]) -> np.ndarray:
    """(K, 2) top-left corners where a ``side`` box fits in ``region`` clear of ``taken``."""
    xs = _grid_positions(region[0], region[2] - side, grid)
    ys = _grid_positions(region[1], region[3] - side, grid)
    corners = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
    ok = np.ones(len(corners), dtype=bool)
    for x1, y1, x2, y2 in taken:  # keep _GAP_PX empty pixels between boxes
        apart_x = (corners[:, 0] + side + _GAP_PX <= x1) | (corners[:, 0] >= x2 + _GAP_PX)
        apart_y = (corners[:, 1] + side + _GAP_PX <= y1) | (corners[:, 1] >= y2 + _GAP_PX)
        ok &= apart_x | apart_y
    return corners[ok]


def _grid_positions(low: int, high: int, grid: int) -> np.ndarray:
    """Multiples of ``grid`` in [low, high]; every integer there if none is a multiple."""
    if high < low:
        return np.zeros(0, dtype=np.int64)
    first = -(-low // grid) * grid
    on_grid = np.arange(first, high + 1, grid)
    return on_grid if len(on_grid) else np.arange(low, high + 1)


def central_square(size: tuple[int, int]) -> PixelBox:
    """The largest centred square of a (width, height) frame."""
    w, h = size
    s = min(w, h)
    x, y = (w - s) // 2, (h - s) // 2
    return (x, y, x + s, y + s)


def sample_background(rng: np.random.Generator, kinds: tuple[str, ...], shape_colours: tuple[str, ...]) -> Background:
    """A background whose colours stay far from every colour shapes may have."""
    kind = kinds[rng.integers(len(kinds))]
    colour_a = _muted_colour(rng, shape_colours)
    colour_b = _muted_colour(rng, shape_colours) if kind == "gradient" else colour_a
    return Background(kind=kind, colour_a=colour_a, colour_b=colour_b,
                      horizontal=bool(rng.random() < 0.5), noise_seed=int(rng.integers(2**31)))


def _muted_colour(rng: np.random.Generator, shape_colours: tuple[str, ...]) -> tuple[int, int, int]:
    targets = np.array([PALETTE[c] for c in shape_colours], dtype=np.float64)
    for _ in range(1000):  # rejection sampling: nearly every draw passes with the palette's colours
        grey = rng.integers(_BACKGROUND_GREY[0], _BACKGROUND_GREY[1] + 1)
        colour = grey + rng.integers(-_BACKGROUND_TINT, _BACKGROUND_TINT + 1, size=3)
        if np.linalg.norm(targets - colour, axis=1).min() >= _MIN_BACKGROUND_DISTANCE:
            return tuple(int(v) for v in colour)
    raise SceneSamplingError(f"no muted background colour is far enough from shape colours {shape_colours}")
