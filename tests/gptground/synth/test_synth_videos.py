"""Video clips: the decoded frames show the event exactly during its span."""

from __future__ import annotations

import av
import numpy as np
import pytest

from gptground.synth import ImageWorldConfig, VideoWorldConfig, read_jsonl
from gptground.synth.videos import event_shape_at, sample_video_scene, write_video
from gptground.synth.vocabulary import PALETTE

LOOKS = ImageWorldConfig()


def _decode(path) -> list[tuple[float, np.ndarray]]:
    """(time in s, (H, W, 3) uint8) of every frame."""
    with av.open(str(path)) as container:
        return [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def _centre_colour(pixels: np.ndarray, box) -> np.ndarray:
    """Mean colour of a 4x4 patch just below the box centre (inside every shape kind)."""
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    return pixels[cy:cy + 4, cx - 2:cx + 2].reshape(-1, 3).mean(axis=0)


def _close(colour: np.ndarray, name: str) -> bool:
    return float(np.linalg.norm(colour - np.asarray(PALETTE[name]))) < 60


def _scene(seed: int, kind: str, codec: str = "libx264"):
    cfg = VideoWorldConfig(events=(kind,), fps=(8, 15), durations=(2.0, 3.0), sizes=((64, 48), (64, 64)),
                           codec=codec)
    return sample_video_scene(np.random.default_rng(seed), cfg, LOOKS)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
@pytest.mark.parametrize("seed", range(3))
def test_appear_visible_exactly_inside_span(tmp_path, seed, codec):
    scene = _scene(seed, "appear", codec)
    write_video(scene, tmp_path / "v.mp4", codec)
    frames = _decode(tmp_path / "v.mp4")
    assert len(frames) == scene.num_frames
    span, shape = scene.span, scene.event.shape
    for i, (t, pixels) in enumerate(frames):
        assert t == pytest.approx(i / scene.fps)
        inside = span.start <= t < span.end
        assert _close(_centre_colour(pixels, shape.box), shape.colour) == inside, (i, t, span)


@pytest.mark.parametrize("seed", range(3))
def test_colour_change_only_inside_span(tmp_path, seed):
    scene = _scene(seed, "change_colour")
    write_video(scene, tmp_path / "v.mp4", "libx264")
    span, ev = scene.span, scene.event
    for t, pixels in _decode(tmp_path / "v.mp4"):
        expected = ev.new_colour if span.start <= t < span.end else ev.shape.colour
        assert _close(_centre_colour(pixels, ev.shape.box), expected), (t, span, expected)


@pytest.mark.parametrize("seed", range(3))
def test_move_is_a_trip_inside_the_span(tmp_path, seed):
    scene = _scene(seed, "move")
    ev = scene.event
    home = np.asarray(_centre(ev.shape.box))
    planned = np.array([_centre(event_shape_at(scene, i).box) for i in range(scene.num_frames)])
    away = np.abs(planned - home).max(axis=1)  # (frames,) pixels from home
    inside = np.zeros(scene.num_frames, dtype=bool)
    inside[ev.start_frame + 1: ev.end_frame] = True  # on start_frame it has not left yet
    assert away[~inside].max() == 0 and away[inside].min() > 0
    assert away.max() >= 0.25 * (ev.shape.box[2] - ev.shape.box[0])  # a visible trip
    write_video(scene, tmp_path / "v.mp4", "mpeg4")
    rgb = np.asarray(PALETTE[ev.shape.colour])
    seen = []
    for _, pixels in _decode(tmp_path / "v.mp4"):  # the decoded frames follow that plan
        ys, xs = np.nonzero(np.linalg.norm(pixels.astype(float) - rgb, axis=-1) < 60)
        seen.append((xs.mean(), ys.mean()))
    shift = np.asarray(seen) - seen[0]  # relative to frame 0: the kind's centroid offset cancels
    np.testing.assert_allclose(shift, planned - planned[0], atol=1.5)


def _centre(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_uniform_frame_sampling_recovers_the_span():
    """span_grid frames sampled uniformly by index locate every event to IoU >= 0.6."""
    cfg = VideoWorldConfig()
    for seed in range(300):
        scene = sample_video_scene(np.random.default_rng(seed), cfg, LOOKS)
        n = scene.num_frames
        sampled = np.linspace(0, n - 1, cfg.span_grid).round().astype(int)
        inside = np.array([_shows_event(scene, i) for i in sampled])
        first, last = np.flatnonzero(inside)[[0, -1]]
        # boundaries halfway between the last sample outside and the first inside
        start = (sampled[first - 1] + sampled[first]) / 2 if first > 0 else 0
        end = (sampled[last] + sampled[last + 1]) / 2 if last < len(sampled) - 1 else n
        truth = (scene.event.start_frame, scene.event.end_frame)
        inter = max(0.0, min(end, truth[1]) - max(start, truth[0]))
        assert inter / (max(end, truth[1]) - min(start, truth[0])) >= 0.6, (seed, (start, end), truth)


def _shows_event(scene, frame: int) -> bool:
    """Whether ``frame`` shows the event: shape visible, recoloured, or between its two places."""
    ev, drawn = scene.event, event_shape_at(scene, frame)
    if ev.kind == "appear":
        return drawn is not None
    if ev.kind == "change_colour":
        return drawn.colour != ev.shape.colour
    return drawn.box != ev.shape.box


def test_world_videos_last_their_target_duration(tiny_world):
    manifest, _ = tiny_world
    for record in read_jsonl(manifest.path("video_tg", "test")):
        target = record["target"]
        frames = _decode(manifest.root / record["video"])
        step = frames[1][0] - frames[0][0]
        assert len(frames) * step == pytest.approx(target["duration"])
        start, end = target["spans"][0]
        assert 0 <= start < end <= target["duration"]
        assert (end - start) / target["duration"] >= 0.25 - 1 / len(frames)
