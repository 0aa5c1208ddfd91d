"""Sound clips of the world: tones, noise bursts and spoken words at known times.

An event starts and ends on multiples of ``duration / span_grid`` seconds and fills its
span: tones and noise from the first to the last sample (with 10 ms fades), a spoken word
stretched (resampled) to the span's length. Outside events there is only a faint noise
floor. Clips are written as 16-bit PCM WAV or FLAC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from gptground.grounding.types import Span
from gptground.synth.config import AudioWorldConfig, event_cells
from gptground.synth.speech import word_waveform
from gptground.synth.vocabulary import SPOKEN_WORDS

# Named pitches (Hz) and levels (full scale = 1). Each event's pitch gets a +-5 % jitter.
HIGH_BEEP_HZ = 1600.0
LOW_TONE_HZ = 220.0
_TONE_LEVEL = 0.5
_NOISE_BURST_STD = 0.2
_SPEECH_PEAK = 0.6
_FADE_S = 0.01
_PITCH_JITTER = 0.05


@dataclass(frozen=True)
class AudioEvent:
    """One sound between ``start`` and ``end`` seconds."""

    kind: str
    start: float
    end: float
    pitch_hz: float | None = None
    """high_beep, low_tone: the tone's frequency."""
    word: str | None = None
    """spoken_word: the word."""

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)


@dataclass(frozen=True)
class AudioScene:
    """A clip: sample rate (Hz), length (s), file format, events in time order, the queried one."""

    sample_rate: int
    duration: float
    fmt: str
    events: tuple[AudioEvent, ...]
    target: int
    noise_level: float
    """Standard deviation of the background noise floor."""
    noise_seed: int

    @property
    def target_event(self) -> AudioEvent:
        return self.events[self.target]


def sample_audio_scene(rng: np.random.Generator, cfg: AudioWorldConfig, kinds: tuple[str, ...]) -> AudioScene:
    """A clip with one queried event and, sometimes, a distractor event of another kind.

    Args:
        kinds: the event kinds this machine can make (``cfg.events`` minus spoken_word
            when espeak-ng is missing).
    """
    sample_rate = int(cfg.sample_rates[rng.integers(len(cfg.sample_rates))])
    duration = float(cfg.durations[rng.integers(len(cfg.durations))])
    fmt = cfg.formats[rng.integers(len(cfg.formats))]
    order = rng.permutation(len(kinds))
    cells = _event_cells(rng, cfg, taken=None)
    events = [_make_event(rng, kinds[order[0]], cells, duration, cfg.span_grid)]
    if len(kinds) > 1 and rng.random() < cfg.distractor_prob:
        other = _event_cells(rng, cfg, taken=cells)
        if other is not None:
            events.append(_make_event(rng, kinds[order[1]], other, duration, cfg.span_grid))
    queried = events[0]
    events.sort(key=lambda e: e.start)
    return AudioScene(sample_rate=sample_rate, duration=duration, fmt=fmt, events=tuple(events),
                      target=events.index(queried), noise_level=cfg.noise_level,
                      noise_seed=int(rng.integers(2**31)))


def _event_cells(rng: np.random.Generator, cfg: AudioWorldConfig,
                 taken: tuple[int, int] | None) -> tuple[int, int] | None:
    """(first, last + 1) grid cells of an event, clear of ``taken``; None if nothing fits."""
    grid = cfg.span_grid
    fewest, most = event_cells(cfg.event_frac, grid)
    length = int(rng.integers(fewest, most + 1))
    starts = [s for s in range(grid - length + 1) if taken is None or s + length <= taken[0] or s >= taken[1]]
    if not starts:
        return None
    first = starts[rng.integers(len(starts))]
    return first, first + length


def _make_event(rng: np.random.Generator, kind: str, cells: tuple[int, int], duration: float, grid: int) -> AudioEvent:
    start, end = cells[0] * duration / grid, cells[1] * duration / grid
    jitter = 1.0 + rng.uniform(-_PITCH_JITTER, _PITCH_JITTER)
    if kind == "high_beep":
        return AudioEvent(kind, start, end, pitch_hz=round(HIGH_BEEP_HZ * jitter, 2))
    if kind == "low_tone":
        return AudioEvent(kind, start, end, pitch_hz=round(LOW_TONE_HZ * jitter, 2))
    if kind == "spoken_word":
        return AudioEvent(kind, start, end, word=SPOKEN_WORDS[rng.integers(len(SPOKEN_WORDS))])
    return AudioEvent(kind, start, end)


def synthesize(scene: AudioScene) -> np.ndarray:
    """(N,) float32 samples in [-1, 1] of the whole clip."""
    sr = scene.sample_rate
    noise_rng = np.random.default_rng(scene.noise_seed)
    out = noise_rng.standard_normal(round(scene.duration * sr), dtype=np.float32)
    out *= np.float32(scene.noise_level)
    for event in scene.events:
        first, last = round(event.start * sr), min(len(out), round(event.end * sr))
        out[first:last] += _event_samples(event, last - first, sr, noise_rng) * fade_envelope(last - first, sr)
    return np.clip(out, -1.0, 1.0)


def _event_samples(event: AudioEvent, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32 samples of the event's sound, before the fade envelope."""
    t = np.arange(n, dtype=np.float64) / sr
    if event.kind == "high_beep":
        return (_TONE_LEVEL * np.sin(2 * np.pi * event.pitch_hz * t)).astype(np.float32)
    if event.kind == "low_tone":  # a touch of 2nd harmonic makes it a "tone", not a pure sine
        wave = np.sin(2 * np.pi * event.pitch_hz * t) + 0.3 * np.sin(4 * np.pi * event.pitch_hz * t)
        return (_TONE_LEVEL / 1.3 * wave).astype(np.float32)
    if event.kind == "noise_burst":
        return _NOISE_BURST_STD * rng.standard_normal(n, dtype=np.float32)
    if event.kind == "spoken_word":
        return _stretched_word(event.word, n)
    raise ValueError(f"unknown audio event kind {event.kind!r}")


def _stretched_word(word: str, n: int) -> np.ndarray:
    """The spoken word resampled to exactly ``n`` samples (this also slows it down and lowers it)."""
    speech, _ = word_waveform(word)
    positions = np.linspace(0.0, len(speech) - 1, n)
    wave = np.interp(positions, np.arange(len(speech)), speech)
    return (_SPEECH_PEAK * wave / np.abs(wave).max()).astype(np.float32)


def fade_envelope(n: int, sr: int) -> np.ndarray:
    """(n,) float32 gain: raised-cosine ramps of 10 ms at both ends (no clicks), 1 between."""
    ramp = min(n // 2, round(_FADE_S * sr))
    gain = np.ones(n, dtype=np.float32)
    if ramp > 0:
        up = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp, dtype=np.float32))
        gain[:ramp], gain[n - ramp:] = up, up[::-1]
    return gain


def write_clip(samples: np.ndarray, sample_rate: int, path: Path, fmt: str) -> None:
    """Write (N,) float samples as 16-bit PCM ``fmt`` ('wav' or 'flac') at ``path``."""
    sf.write(str(path), samples, sample_rate, format=fmt.upper(), subtype="PCM_16")


def write_audio(scene: AudioScene, path: Path) -> None:
    """Synthesise ``scene`` and write it at ``path`` in the scene's format."""
    write_clip(synthesize(scene), scene.sample_rate, path, scene.fmt)
