"""Typed configuration of the synthetic grounding world.

One :class:`SynthConfig` fixes everything the generator does: the seed, how many samples
each task gets in each split, and what images, videos and sounds look like. Every
dataclass validates itself in ``__post_init__`` and names the offending field.

Sequences may arrive as lists (from YAML or ``key=value`` overrides); they are normalised
to tuples so that configs compare and hash by value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from gptground.synth.vocabulary import (
    AUDIO_EVENT_KINDS,
    BACKGROUND_KINDS,
    PALETTE,
    SHAPE_KINDS,
    VIDEO_EVENT_KINDS,
)

SPLITS = ("train", "val", "test")
STAGE_TASKS: dict[int, tuple[str, ...]] = {
    1: ("image_caption", "video_caption", "audio_caption", "sound_source_caption"),
    2: ("rec", "grounded_caption", "video_tg", "audio_tg", "sound_loc"),
    3: ("image_dialogue", "video_dialogue", "audio_dialogue"),
}
TASK_STAGE: dict[str, int] = {t: s for s, tasks in STAGE_TASKS.items() for t in tasks}

# Highest tone the world plays (the high beep, 1.8 kHz with jitter) must stay below the
# Nyquist frequency of every sample rate.
_MIN_SAMPLE_RATE = 8000


class SynthConfigError(ValueError):
    """A synthetic-world config field has an invalid value; the message names the field."""


def _check(condition: bool, name: str, message: str) -> None:
    if not condition:
        raise SynthConfigError(f"{name}: {message}")


def _as_tuple(value) -> tuple:
    """Lists (from YAML) -> tuples, recursively, so configs are hashable and compare by value."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def _check_range(value: tuple, name: str, low: float, high: float) -> None:
    """``value`` is a (min, max) pair inside [low, high] with min <= max."""
    _check(len(value) == 2, name, f"must be a (min, max) pair, got {value!r}")
    _check(low <= value[0] <= value[1] <= high, name, f"needs {low} <= min <= max <= {high}, got {value!r}")


def _check_choices(value: tuple, name: str, allowed) -> None:
    _check(len(value) > 0, name, "must not be empty")
    unknown = [v for v in value if v not in allowed]
    _check(not unknown, name, f"unknown {unknown}; choose from {sorted(allowed)}")
    _check(len(set(value)) == len(value), name, f"has duplicates: {value!r}")


def event_cells(event_frac: tuple[float, float], span_grid: int) -> tuple[int, int]:
    """(fewest, most) whole grid steps an event may last, for ``event_frac`` of the clip."""
    return max(1, math.ceil(event_frac[0] * span_grid)), math.floor(event_frac[1] * span_grid)


def _check_sizes(sizes: tuple, name: str, minimum: int, even: bool = False) -> None:
    _check(len(sizes) > 0, name, "must list at least one (width, height)")
    for size in sizes:
        _check(len(size) == 2, name, f"each entry is (width, height), got {size!r}")
        _check(all(isinstance(v, int) and v >= minimum for v in size), name,
               f"width and height are integers >= {minimum}, got {size!r}")
        if even:
            _check(size[0] % 2 == 0 and size[1] % 2 == 0, name,
                   f"H.264 with yuv420p needs even width and height, got {size!r}")


@dataclass
class TaskCounts:
    """How many records each task gets in one split (before ``SynthConfig.scale``)."""

    image_caption: int = 0
    """Stage 1: image -> one-sentence caption."""
    video_caption: int = 0
    """Stage 1: video -> what happens."""
    audio_caption: int = 0
    """Stage 1: sound -> which sounds, in order."""
    sound_source_caption: int = 0
    """Stage 1: a sound_loc sound alone -> the shape that makes it ("A red square.")."""
    rec: int = 0
    """Stage 2: referring expression -> one box."""
    grounded_caption: int = 0
    """Stage 2: caption with a box after each shape."""
    video_tg: int = 0
    """Stage 2: video temporal grounding, question -> {t1,t2}."""
    audio_tg: int = 0
    """Stage 2: audio temporal grounding, question -> {t1,t2}."""
    sound_loc: int = 0
    """Stage 2: image + sound -> box of the shape that makes the sound."""
    image_dialogue: int = 0
    """Stage 3: multi-turn image conversation mixing text and boxes."""
    video_dialogue: int = 0
    """Stage 3: multi-turn video conversation mixing text and spans."""
    audio_dialogue: int = 0
    """Stage 3: multi-turn sound conversation mixing text and spans."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            _check(isinstance(value, int) and value >= 0, f"counts.{f.name}",
                   f"must be an integer >= 0, got {value!r}")

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _train_counts() -> TaskCounts:
    return TaskCounts(
        image_caption=500, video_caption=300, audio_caption=300, sound_source_caption=300,
        rec=2000, grounded_caption=500, video_tg=2000, audio_tg=500, sound_loc=2400,
        image_dialogue=300, video_dialogue=200, audio_dialogue=200,
    )


def _val_counts() -> TaskCounts:
    return TaskCounts(
        image_caption=20, video_caption=20, audio_caption=20, sound_source_caption=20,
        rec=50, grounded_caption=50, video_tg=50, audio_tg=50, sound_loc=50,
        image_dialogue=20, video_dialogue=20, audio_dialogue=20,
    )


def _test_counts() -> TaskCounts:
    return TaskCounts(rec=200, grounded_caption=100, video_tg=200, audio_tg=200, sound_loc=200)


@dataclass
class ImageWorldConfig:
    """Still images: flat-coloured shapes on muted backgrounds (also used for sound_loc)."""

    sizes: tuple[tuple[int, int], ...] = ((64, 64),)
    """(width, height) choices in pixels; non-square sizes are padded to a square by models."""
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    """Shape colours, names from the palette in ``vocabulary.PALETTE``."""
    kinds: tuple[str, ...] = ("circle", "square", "triangle")
    """Shape kinds, from ``vocabulary.SHAPE_KINDS``."""
    min_shapes: int = 1
    """Fewest shapes in an image."""
    max_shapes: int = 3
    """Most shapes in an image."""
    small_side: tuple[float, float] = (0.25, 0.32)
    """Side of a "small" shape, as a fraction of the shorter image side (min, max)."""
    large_side: tuple[float, float] = (0.4, 0.45)
    """Side of a "large" shape, as a fraction of the shorter image side (min, max)."""
    grid_px: int = 4
    """Box corners and sides are multiples of this many pixels (1 = any pixel)."""
    size_contrast_prob: float = 0.1
    """Chance that an image holds a small and a large shape of the same colour and kind,
    so its referring expression needs the size word."""
    backgrounds: tuple[str, ...] = ("plain", "gradient", "noise")
    """Background kinds, from ``vocabulary.BACKGROUND_KINDS``."""

    def __post_init__(self) -> None:
        self.sizes = _as_tuple(self.sizes)
        self.colours, self.kinds = _as_tuple(self.colours), _as_tuple(self.kinds)
        self.small_side, self.large_side = _as_tuple(self.small_side), _as_tuple(self.large_side)
        self.backgrounds = _as_tuple(self.backgrounds)
        _check_sizes(self.sizes, "image.sizes", minimum=16)
        _check_choices(self.colours, "image.colours", PALETTE)
        _check_choices(self.kinds, "image.kinds", SHAPE_KINDS)
        _check_choices(self.backgrounds, "image.backgrounds", BACKGROUND_KINDS)
        _check(1 <= self.min_shapes <= self.max_shapes, "image.min_shapes",
               f"needs 1 <= min_shapes <= max_shapes, got {self.min_shapes}, {self.max_shapes}")
        _check(self.max_shapes <= len(self.colours) * len(self.kinds), "image.max_shapes",
               f"{self.max_shapes} shapes cannot all differ in colour or kind with "
               f"{len(self.colours)} colours x {len(self.kinds)} kinds")
        _check_range(self.small_side, "image.small_side", 0.05, 1.0)
        _check_range(self.large_side, "image.large_side", 0.05, 1.0)
        _check(self.small_side[1] < self.large_side[0], "image.small_side",
               f"small sides {self.small_side} must stay below large sides {self.large_side}")
        _check(isinstance(self.grid_px, int) and self.grid_px >= 1, "image.grid_px",
               f"must be an integer >= 1, got {self.grid_px!r}")
        _check(0.0 <= self.size_contrast_prob <= 1.0, "image.size_contrast_prob",
               f"must be in [0, 1], got {self.size_contrast_prob}")


@dataclass
class VideoWorldConfig:
    """Short mp4 clips in which one shape appears, moves or changes colour during a span."""

    sizes: tuple[tuple[int, int], ...] = ((64, 64), (96, 64), (64, 48))
    """(width, height) choices in pixels, even numbers. Shapes stay in the central square,
    so a centre crop or a pad to square keeps them."""
    fps: tuple[int, ...] = (8, 10, 15, 25)
    """Frame-rate choices (frames per second)."""
    durations: tuple[float, ...] = (2.0, 3.0, 4.0, 5.0, 6.0)
    """Clip-length choices in seconds."""
    events: tuple[str, ...] = VIDEO_EVENT_KINDS
    """Event kinds to draw from: appear, move, change_colour."""
    span_grid: int = 16
    """Event boundaries fall on multiples of duration / span_grid (rounded to a frame), so a
    model sampling span_grid frames uniformly by index can recover them."""
    event_frac: tuple[float, float] = (0.25, 0.75)
    """Event length as a fraction of the clip (min, max)."""
    side: tuple[float, float] = (0.35, 0.45)
    """Shape side as a fraction of the shorter frame side (min, max)."""
    distractor_prob: float = 0.5
    """Chance of one extra, static shape of another colour and kind."""
    codec: str = "mpeg4"
    """PyAV encoder: mpeg4 (MPEG-4 Part 2) or libx264 (H.264), both yuv420p in mp4. Only
    mpeg4 gives byte-identical reruns: libx264 was seen to vary between identical runs."""

    def __post_init__(self) -> None:
        self.sizes, self.fps = _as_tuple(self.sizes), _as_tuple(self.fps)
        self.durations, self.events = _as_tuple(self.durations), _as_tuple(self.events)
        self.event_frac, self.side = _as_tuple(self.event_frac), _as_tuple(self.side)
        _check_sizes(self.sizes, "video.sizes", minimum=16, even=True)
        _check(len(self.fps) > 0 and all(isinstance(f, int) and 1 <= f <= 120 for f in self.fps),
               "video.fps", f"integers in [1, 120], got {self.fps!r}")
        _check(len(self.durations) > 0 and all(0 < d <= 600 for d in self.durations),
               "video.durations", f"seconds in (0, 600], got {self.durations!r}")
        _check_choices(self.events, "video.events", VIDEO_EVENT_KINDS)
        _check(isinstance(self.span_grid, int) and self.span_grid >= 2, "video.span_grid",
               f"must be an integer >= 2, got {self.span_grid!r}")
        shortest = min(self.durations) * min(self.fps)
        _check(shortest >= self.span_grid, "video.span_grid",
               f"the shortest clip has {shortest:g} frames, fewer than span_grid={self.span_grid}")
        _check_range(self.event_frac, "video.event_frac", 0.0, 1.0)
        fewest, most = event_cells(self.event_frac, self.span_grid)
        _check(most >= fewest, "video.event_frac",
               f"{self.event_frac} allows no whole number of 1/{self.span_grid} steps")
        _check_range(self.side, "video.side", 0.1, 0.6)
        _check(0.0 <= self.distractor_prob <= 1.0, "video.distractor_prob",
               f"must be in [0, 1], got {self.distractor_prob}")
        _check(self.codec in ("libx264", "mpeg4"), "video.codec", f"libx264 or mpeg4, got {self.codec!r}")


@dataclass
class AudioWorldConfig:
    """Sound clips with events at known times, and the sounds of shapes for sound_loc."""

    sample_rates: tuple[int, ...] = (16000, 22050, 44100)
    """Sample-rate choices in Hz."""
    durations: tuple[float, ...] = (4.0,)
    """Clip-length choices in seconds for the audio tasks."""
    formats: tuple[str, ...] = ("flac", "wav")
    """File-format choices (16-bit PCM)."""
    events: tuple[str, ...] = AUDIO_EVENT_KINDS
    """Event kinds: high_beep, low_tone, noise_burst, spoken_word (needs espeak-ng on PATH;
    skipped otherwise, and the manifest says so)."""
    span_grid: int = 8
    """Event boundaries fall on multiples of duration / span_grid seconds. Answers need this
    resolution: set it to the number of contiguous windows the audio encoder sees."""
    event_frac: tuple[float, float] = (0.25, 0.5)
    """Event length as a fraction of the clip (min, max)."""
    distractor_prob: float = 0.5
    """Chance of a second event of another kind, not overlapping the first."""
    noise_level: float = 0.0005
    """Standard deviation of the background noise floor (full scale = 1)."""
    sound_loc_duration: float = 2.0
    """Length in seconds of a sound_loc clip (one ImageBind window by default)."""
    sound_loc_sounds_per_image: int = 3
    """Train split: sound_loc records per image, its shapes sounding in turn (in a random
    order, repeated when it has fewer shapes), so the image alone never tells the answer.
    Val and test: one record per image."""

    def __post_init__(self) -> None:
        self.sample_rates, self.durations = _as_tuple(self.sample_rates), _as_tuple(self.durations)
        self.formats, self.events = _as_tuple(self.formats), _as_tuple(self.events)
        self.event_frac = _as_tuple(self.event_frac)
        rates_ok = all(isinstance(r, int) and r >= _MIN_SAMPLE_RATE for r in self.sample_rates)
        _check(len(self.sample_rates) > 0 and rates_ok, "audio.sample_rates",
               f"integers >= {_MIN_SAMPLE_RATE} Hz, got {self.sample_rates!r}")
        _check(len(self.durations) > 0 and all(0.5 <= d <= 600 for d in self.durations),
               "audio.durations", f"seconds in [0.5, 600], got {self.durations!r}")
        _check_choices(self.formats, "audio.formats", ("wav", "flac"))
        _check_choices(self.events, "audio.events", AUDIO_EVENT_KINDS)
        _check(isinstance(self.span_grid, int) and self.span_grid >= 2, "audio.span_grid",
               f"must be an integer >= 2, got {self.span_grid!r}")
        _check_range(self.event_frac, "audio.event_frac", 0.0, 1.0)
        fewest, most = event_cells(self.event_frac, self.span_grid)
        _check(most >= fewest, "audio.event_frac",
               f"{self.event_frac} allows no whole number of 1/{self.span_grid} steps")
        _check(0.0 <= self.distractor_prob <= 1.0, "audio.distractor_prob",
               f"must be in [0, 1], got {self.distractor_prob}")
        _check(0.0 <= self.noise_level <= 0.1, "audio.noise_level", f"must be in [0, 0.1], got {self.noise_level}")
        _check(0.5 <= self.sound_loc_duration <= 60, "audio.sound_loc_duration",
               f"seconds in [0.5, 60], got {self.sound_loc_duration}")
        _check(isinstance(self.sound_loc_sounds_per_image, int) and self.sound_loc_sounds_per_image >= 1,
               "audio.sound_loc_sounds_per_image", f"must be an integer >= 1, got {self.sound_loc_sounds_per_image!r}")


@dataclass
class SynthConfig:
    """Everything that decides the synthetic world. Same config => byte-identical files."""

    seed: int = 0
    """Seed of every random choice."""
    scale: float = 1.0
    """Multiplies every train count (val and test counts stay fixed)."""
    train: TaskCounts = field(default_factory=_train_counts)
    """Records per task in the train split (before ``scale``)."""
    val: TaskCounts = field(default_factory=_val_counts)
    """Records per task in the val split."""
    test: TaskCounts = field(default_factory=_test_counts)
    """Records per task in the test split."""
    image: ImageWorldConfig = field(default_factory=ImageWorldConfig)
    video: VideoWorldConfig = field(default_factory=VideoWorldConfig)
    audio: AudioWorldConfig = field(default_factory=AudioWorldConfig)
    workers: int = 2
    """Processes that render media; output does not depend on it."""

    def __post_init__(self) -> None:
        _check(isinstance(self.seed, int) and self.seed >= 0, "seed", f"must be an integer >= 0, got {self.seed!r}")
        _check(isinstance(self.scale, (int, float)) and 0 <= self.scale <= 1000, "scale",
               f"must be a number in [0, 1000], got {self.scale!r}")
        _check(isinstance(self.workers, int) and self.workers >= 1, "workers",
               f"must be an integer >= 1, got {self.workers!r}")
        _check(len(self.image.colours) >= 2, "image.colours",
               "sound_loc needs at least 2 colours (the sounding shape is told apart by its colour)")

    def counts(self, split: str) -> dict[str, int]:
        """Records per task in ``split``, with ``scale`` applied to the train split.

        A non-zero train count never scales below 1, so a tiny world still has every task.
        """
        _check(split in SPLITS, "split", f"one of {SPLITS}, got {split!r}")
        raw = getattr(self, split).as_dict()
        if split != "train":
            return raw
        return {task: (max(1, round(n * self.scale)) if n and self.scale else 0) for task, n in raw.items()}
