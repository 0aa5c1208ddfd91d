"""Sound-source localisation: an image of shapes and the sound one of them makes.

The sound of a shape is a fixed, learnable mapping (documented in the data card):
its colour sets the pitch (half an octave between neighbouring colours of the palette)
and its kind sets the timbre. Shapes in one image all have different colours, so the
pitch alone names the source; the timbre is a second, consistent cue.

In the train split each image comes with several sounds, its shapes sounding in turn
(``AudioWorldConfig.sound_loc_sounds_per_image``). With one sound per image a model
memorises image -> box and never listens: 1.00 on train pairs, 0.39 on test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptground.synth.audio import fade_envelope, write_clip
from gptground.synth.config import AudioWorldConfig, ImageWorldConfig
from gptground.synth.images import ImageScene, sample_image_scene, write_image
from gptground.synth.world import Shape

PITCH_OF_COLOUR: dict[str, float] = {
    "red": 262.0, "orange": 370.0, "yellow": 523.0, "green": 740.0,
    "cyan": 1047.0, "blue": 1480.0, "purple": 2093.0, "white": 2960.0,
}
TIMBRE_OF_KIND: dict[str, str] = {"circle": "sine", "square": "square", "triangle": "sawtooth", "diamond": "pulsed"}

_LEVEL = 0.5  # peak of the tone, full scale = 1
_PULSE_HZ = 4.0  # on/off rate of the diamond's pulsed tone
_PITCH_JITTER = 0.02  # +-2 %: far below the half-octave (41 %) between colours
_SOUND_SPAN = (0.05, 0.95)  # the tone plays over this fraction of the clip
_HARMONICS = 12  # highest partial of square/sawtooth tones: enough for a distinct timbre


@dataclass(frozen=True)
class SoundLocScene:
    """An image, the index of the shape that sounds, and how its sound is recorded."""

    image: ImageScene
    source: int
    sample_rate: int
    duration: float
    fmt: str
    pitch_hz: float
    noise_level: float
    noise_seed: int

    @property
    def source_shape(self) -> Shape:
        return self.image.shapes[self.source]


def sample_sound_loc_image(rng: np.random.Generator, looks: ImageWorldConfig) -> ImageScene:
    """An image of 2+ shapes with distinct colours, so the pitch alone names the source."""
    high = max(2, min(looks.max_shapes, len(looks.colours)))
    return sample_image_scene(rng, looks, n_shapes=(max(2, min(looks.min_shapes, high)), high), distinct_colours=True)


def sample_sound_loc_scene(rng: np.random.Generator, looks: ImageWorldConfig, cfg: AudioWorldConfig,
                           image: ImageScene | None = None, source: int | None = None) -> SoundLocScene:
    """One of the image's shapes and its sound; ``image`` and ``source`` are drawn when not given."""
    image = sample_sound_loc_image(rng, looks) if image is None else image
    source = int(rng.integers(len(image.shapes))) if source is None else source
    colour = image.shapes[source].colour
    return SoundLocScene(
        image=image, source=source,
        sample_rate=int(cfg.sample_rates[rng.integers(len(cfg.sample_rates))]),
        duration=cfg.sound_loc_duration,
        fmt=cfg.formats[rng.integers(len(cfg.formats))],
        pitch_hz=round(PITCH_OF_COLOUR[colour] * (1.0 + rng.uniform(-_PITCH_JITTER, _PITCH_JITTER)), 2),
        noise_level=cfg.noise_level,
        noise_seed=int(rng.integers(2**31)),
    )


def shape_sound(scene: SoundLocScene) -> np.ndarray:
    """(N,) float32 samples in [-1, 1]: the source shape's tone over a faint noise floor."""
    sr = scene.sample_rate
    out = np.random.default_rng(scene.noise_seed).standard_normal(round(scene.duration * sr), dtype=np.float32)
    out *= np.float32(scene.noise_level)
    first, last = (round(f * len(out)) for f in _SOUND_SPAN)
    tone = shape_tone(TIMBRE_OF_KIND[scene.source_shape.kind], scene.pitch_hz, last - first, sr)
    out[first:last] += tone * fade_envelope(last - first, sr)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def shape_tone(timbre: str, pitch_hz: float, n: int, sr: int) -> np.ndarray:
    """(n,) float32 band-limited tone: harmonics above 0.45 * sr are left out (no aliasing)."""
    t = np.arange(n, dtype=np.float64) / sr
    if timbre in ("sine", "pulsed"):
        harmonics = [(1, 1.0)]
    elif timbre == "square":  # odd harmonics, 1/k
        harmonics = [(k, 1.0 / k) for k in range(1, _HARMONICS + 1, 2)]
    elif timbre == "sawtooth":  # all harmonics, 1/k
        harmonics = [(k, 1.0 / k) for k in range(1, _HARMONICS + 1)]
    else:
        raise ValueError(f"unknown timbre {timbre!r}")
    wave = sum(a * np.sin(2 * np.pi * k * pitch_hz * t) for k, a in harmonics if k * pitch_hz < 0.45 * sr)
    if timbre == "pulsed":
        wave = wave * (np.sin(2 * np.pi * _PULSE_HZ * t) > 0)
    return (_LEVEL * wave / max(np.abs(wave).max(), 1e-9)).astype(np.float32)


def write_sound_loc(scene: SoundLocScene, image_path: Path | None, sound_path: Path) -> None:
    """Write the scene's sound (WAV or FLAC), and its PNG image unless ``image_path`` is None."""
    if image_path is not None:
        write_image(scene.image, image_path)
    write_clip(shape_sound(scene), scene.sample_rate, sound_path, scene.fmt)
