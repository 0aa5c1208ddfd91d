"""Image scenes: layout, unambiguous referring expressions, and boxes that match the pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gptground.synth import ImageWorldConfig
from gptground.synth.images import render_image, sample_image_scene
from gptground.synth.vocabulary import PALETTE
from gptground.synth.world import SceneSamplingError, noun_phrase, place_boxes


def _scenes(cfg: ImageWorldConfig, n: int = 200):
    return [sample_image_scene(np.random.default_rng(i), cfg) for i in range(n)]


def _resolve(phrase: str, shapes) -> list:
    """An independent reader of 'small red circle' / 'red circle': the shapes it can mean."""
    words = phrase.split()
    size = words[0] if len(words) == 3 else None
    colour, kind = words[-2], words[-1]
    return [s for s in shapes if s.colour == colour and s.kind == kind and (size is None or s.size == size)]


def _pixel_box_of_colour(pixels: np.ndarray, box, rgb) -> tuple[int, int, int, int] | None:
    """Tight box of the pixels exactly of colour ``rgb`` inside ``box``; None if there are none."""
    x1, y1, x2, y2 = box
    mask = np.all(pixels[y1:y2, x1:x2] == np.asarray(rgb, dtype=np.uint8), axis=-1)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return (x1 + xs.min(), y1 + ys.min(), x1 + xs.max() + 1, y1 + ys.max() + 1), mask.mean()


@pytest.mark.parametrize("contrast", [0.0, 1.0])
def test_every_noun_phrase_names_exactly_one_shape(contrast):
    cfg = ImageWorldConfig(size_contrast_prob=contrast, kinds=("circle", "square", "triangle", "diamond"))
    scenes = _scenes(cfg)
    for scene in scenes:
        for shape in scene.shapes:
            assert _resolve(noun_phrase(shape, scene.shapes), scene.shapes) == [shape]
    sized = [(s, sc) for sc in scenes for s in sc.shapes if len(noun_phrase(s, sc.shapes).split()) == 3]
    assert bool(sized) == bool(contrast)
    for shape, scene in sized:  # the size word is needed: without it the phrase fits two shapes
        assert len(_resolve(noun_phrase(shape, ()), scene.shapes)) == 2


def test_boxes_inside_apart_on_grid_and_sized_by_their_word():
    cfg = ImageWorldConfig(sizes=((64, 64), (96, 64)))
    for scene in _scenes(cfg):
        w, h = scene.size
        boxes = [s.box for s in scene.shapes]
        for shape in scene.shapes:
            x1, y1, x2, y2 = shape.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert all(v % cfg.grid_px == 0 for v in shape.box)
            low, high = cfg.small_side if shape.size == "small" else cfg.large_side
            assert round(low * min(w, h)) <= x2 - x1 <= round(high * min(w, h))
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_rendered_box_is_exactly_the_shape_pixels():
    cfg = ImageWorldConfig(kinds=("circle", "square", "triangle", "diamond"), sizes=((64, 64), (80, 48)))
    for scene in _scenes(cfg, 60):
        pixels = np.asarray(render_image(scene))
        assert pixels.shape == (scene.size[1], scene.size[0], 3)
        for shape in scene.shapes:
            tight, fill = _pixel_box_of_colour(pixels, shape.box, shape.rgb)
            assert tight == shape.box, shape
            assert fill >= 0.4, shape  # a triangle or diamond fills half its box


def test_background_never_takes_a_shape_colour():
    cfg = ImageWorldConfig(colours=tuple(PALETTE))
    for scene in _scenes(cfg, 60):
        pixels = np.asarray(render_image(scene)).astype(np.int32)
        background = np.ones(pixels.shape[:2], dtype=bool)
        for s in scene.shapes:
            background[s.box[1]:s.box[3], s.box[0]:s.box[2]] = False
        for rgb in PALETTE.values():
            distance = np.linalg.norm(pixels[background] - np.asarray(rgb), axis=-1)
            assert distance.min() > 40


def test_world_images_match_their_rec_boxes(tiny_world):
    manifest, _ = tiny_world
    from gptground.synth import read_jsonl
    for split in ("val", "test"):
        for record in read_jsonl(manifest.path("rec", split)):
            target = record["target"]
            image = Image.open(manifest.root / record["image"])
            assert list(image.size) == target["image_size"]
            colour = target["query"].split()[-2]
            tight, _ = _pixel_box_of_colour(np.asarray(image.convert("RGB")), target["boxes"][0], PALETTE[colour])
            assert list(tight) == target["boxes"][0]


def test_impossible_layouts_fail_clearly():
    assert place_boxes(np.random.default_rng(0), [40, 40], (0, 0, 64, 64), grid=4) is None
    cfg = ImageWorldConfig(min_shapes=3, max_shapes=3, small_side=(0.5, 0.55), large_side=(0.6, 0.7))
    with pytest.raises(SceneSamplingError, match="image.max_shapes or image.large_side"):
        sample_image_scene(np.random.default_rng(0), cfg)
