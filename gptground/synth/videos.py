"""Video clips of the world: one shape appears, moves or changes colour during a span.

Frame ``i`` is shown from ``i / fps`` to ``(i + 1) / fps`` seconds. An event covers frames
``start_frame .. end_frame - 1`` (appear, change_colour), or the shape leaves its place at
``start_frame``, travels to ``far_box`` and is back at ``end_frame`` (move: a there-and-back
trip, so that in every event the frames inside the span differ from those outside); the
span in seconds is ``[start_frame / fps, end_frame / fps]`` either way. Boundaries are put on multiples of
``duration / span_grid`` (rounded to a frame), so a model that samples ``span_grid``
frames uniformly by index sees each boundary within one sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from gptground.grounding.types import Span
from gptground.synth.canvas import draw_shapes, render_background
from gptground.synth.config import ImageWorldConfig, VideoWorldConfig, event_cells
from gptground.synth.world import (
    Background,
    PixelBox,
    SceneSamplingError,
    Shape,
    central_square,
    place_boxes,
    random_box,
    sample_background,
    side_px,
)

_GRID_PX = 2  # even corners keep shape edges on yuv420p chroma-sample boundaries
# Near-lossless settings: mpeg4 at constant quantiser 2 (global_quality is in lambda units,
# 118 per quantiser step; without it the encoder starves at 200 kb/s), x264 at CRF 16. One
# thread keeps the bitstream independent of the core count. mpeg4 output is byte-identical
# between runs; libx264's (PyAV 18) was seen to differ now and then between identical runs,
# even with one thread, so it is not the default.
_ENCODER_OPTIONS = {
    "libx264": {"crf": "16", "preset": "veryfast", "threads": "1"},
    "mpeg4": {"flags": "+qscale", "global_quality": str(2 * 118), "threads": "1"},
}


@dataclass(frozen=True)
class VideoEvent:
    """What happens to ``shape`` (as it looks before the event) between two frames."""

    kind: str
    shape: Shape
    start_frame: int
    end_frame: int
    far_box: PixelBox | None = None
    """move: the farthest point of the trip, reached halfway through the span."""
    new_colour: str | None = None
    """change_colour: the shape's colour during the event."""


@dataclass(frozen=True)
class VideoScene:
    """A clip: (width, height), frame rate, frame count, background, event, static distractors."""

    size: tuple[int, int]
    fps: int
    num_frames: int
    background: Background
    event: VideoEvent
    distractors: tuple[Shape, ...]

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return self.num_frames / self.fps

    @property
    def span(self) -> Span:
        """The event's span in seconds."""
        return Span(self.event.start_frame / self.fps, self.event.end_frame / self.fps)


def sample_video_scene(rng: np.random.Generator, cfg: VideoWorldConfig, looks: ImageWorldConfig) -> VideoScene:
    """A clip with one event; shape colours and kinds come from the image world ``looks``."""
    size = cfg.sizes[rng.integers(len(cfg.sizes))]
    fps = int(cfg.fps[rng.integers(len(cfg.fps))])
    num_frames = max(1, round(cfg.durations[rng.integers(len(cfg.durations))] * fps))
    start, end = _event_frames(rng, num_frames, cfg)
    event = _sample_event(rng, cfg, looks, size, start, end)
    distractors = _sample_distractor(rng, cfg, looks, size, event) if rng.random() < cfg.distractor_prob else ()
    background = sample_background(rng, looks.backgrounds, looks.colours)
    return VideoScene(size=size, fps=fps, num_frames=num_frames, background=background, event=event,
                      distractors=distractors)


def _event_frames(rng: np.random.Generator, num_frames: int, cfg: VideoWorldConfig) -> tuple[int, int]:
    """(start, end) frames of an event lasting ``cfg.event_frac`` of the clip, on the span grid."""
    grid = cfg.span_grid
    fewest, most = event_cells(cfg.event_frac, grid)
    cells = int(rng.integers(fewest, most + 1))
    first = int(rng.integers(0, grid - cells + 1))
    return round(first * num_frames / grid), round((first + cells) * num_frames / grid)


def _sample_event(rng: np.random.Generator, cfg: VideoWorldConfig, looks: ImageWorldConfig,
                  size: tuple[int, int], start: int, end: int) -> VideoEvent:
    kind = cfg.events[rng.integers(len(cfg.events))]
    colour = looks.colours[rng.integers(len(looks.colours))]
    shape_kind = looks.kinds[rng.integers(len(looks.kinds))]
    region = central_square(size)
    side = side_px(rng, cfg.side, region[2] - region[0], _GRID_PX)
    size_word = "large" if side >= looks.large_side[0] * min(size) else "small"
    if kind == "move":
        box, far_box = _move_trip(rng, side, region)
    else:
        box, far_box = random_box(rng, side, region, _GRID_PX), None
    new_colour = None
    if kind == "change_colour":
        others = [c for c in looks.colours if c != colour]
        new_colour = others[rng.integers(len(others))]
    shape = Shape(kind=shape_kind, colour=colour, size=size_word, box=box)
    return VideoEvent(kind=kind, shape=shape, start_frame=start, end_frame=end, far_box=far_box, new_colour=new_colour)


def _move_trip(rng: np.random.Generator, side: int, region: PixelBox) -> tuple[PixelBox, PixelBox]:
    """Home and far boxes on one horizontal or vertical line, at least half the free travel apart."""
    travel = (region[2] - region[0]) - side  # pixels the shape can move along either axis
    min_gap = (travel + 1) // 2
    a = int(rng.integers(0, travel - min_gap + 1))
    b = int(rng.integers(a + min_gap, travel + 1))
    a, b = a // _GRID_PX * _GRID_PX, b // _GRID_PX * _GRID_PX
    if rng.random() < 0.5:
        a, b = b, a  # move either way along the axis
    across = int(rng.integers(0, travel + 1)) // _GRID_PX * _GRID_PX
    horizontal = rng.random() < 0.5

    def box(along: int) -> PixelBox:
        x, y = (along, across) if horizontal else (across, along)
        return (region[0] + x, region[1] + y, region[0] + x + side, region[1] + y + side)

    return box(a), box(b)


def _sample_distractor(rng: np.random.Generator, cfg: VideoWorldConfig, looks: ImageWorldConfig,
                       size: tuple[int, int], event: VideoEvent) -> tuple[Shape, ...]:
    """One static shape differing from the event's shape in colour and kind; none if it does not fit."""
    colours = [c for c in looks.colours if c not in (event.shape.colour, event.new_colour)]
    kinds = [k for k in looks.kinds if k != event.shape.kind]
    if not colours or not kinds:
        return ()
    region = central_square(size)
    side = side_px(rng, cfg.side, region[2] - region[0], _GRID_PX)
    placed = place_boxes(rng, [side], region, _GRID_PX, avoid=(_swept_box(event),), attempts=1)
    if placed is None:
        return ()
    size_word = "large" if side >= looks.large_side[0] * min(size) else "small"
    colour, kind = colours[rng.integers(len(colours))], kinds[rng.integers(len(kinds))]
    return (Shape(kind=kind, colour=colour, size=size_word, box=placed[0]),)


def _swept_box(event: VideoEvent) -> PixelBox:
    """The box covering every position of the event's shape."""
    a, b = event.shape.box, event.far_box or event.shape.box
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def event_shape_at(scene: VideoScene, frame: int) -> Shape | None:
    """The event's shape as drawn in ``frame``; ``None`` where it is not visible."""
    ev = scene.event
    inside = ev.start_frame <= frame < ev.end_frame
    if ev.kind == "appear":
        return ev.shape if inside else None
    if ev.kind == "change_colour":
        return ev.shape.recoloured(ev.new_colour) if inside else ev.shape
    if not inside:
        return ev.shape
    progress = (frame - ev.start_frame) / (ev.end_frame - ev.start_frame)  # 0 .. 1 over the span
    away = 1.0 - abs(2.0 * progress - 1.0)  # 0 at home, 1 at the far box halfway, 0 back home
    box = tuple(round(p + (q - p) * away) for p, q in zip(ev.shape.box, ev.far_box))
    return ev.shape.moved_to(box)


def frame_shapes(scene: VideoScene, frame: int) -> list[Shape]:
    """Every shape drawn in ``frame``: the static distractors, then the event's shape."""
    shape = event_shape_at(scene, frame)
    return list(scene.distractors) + ([shape] if shape is not None else [])


def write_video(scene: VideoScene, path: Path, codec: str) -> None:
    """Encode the clip to an mp4 at ``path`` with PyAV (yuv420p, one frame per ``1 / fps`` s)."""
    background = render_background(scene.background, scene.size)  # (H, W, 3) uint8, static
    if codec not in _ENCODER_OPTIONS:
        raise SceneSamplingError(f"video codec {codec!r} is not one of {sorted(_ENCODER_OPTIONS)}")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=scene.fps, options=_ENCODER_OPTIONS[codec])
        stream.width, stream.height = scene.size
        stream.pix_fmt = "yuv420p"
        time_base = Fraction(1, scene.fps)
        for i in range(scene.num_frames):
            pixels = np.asarray(draw_shapes(background, frame_shapes(scene, i)))
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
