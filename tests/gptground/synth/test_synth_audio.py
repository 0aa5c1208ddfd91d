"""Audio clips: the named sound is loud inside its span, silent outside, at its pitch."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from gptground.synth import AudioWorldConfig, read_jsonl
from gptground.synth.audio import (
    HIGH_BEEP_HZ,
    LOW_TONE_HZ,
    sample_audio_scene,
    synthesize,
    write_audio,
)
from gptground.synth.speech import espeak_available

TONES = ("high_beep", "low_tone", "noise_burst")


def _scene(seed: int, kinds: tuple[str, ...], distractor_prob: float = 0.0, **kw):
    cfg = AudioWorldConfig(events=kinds, distractor_prob=distractor_prob, **kw)
    return sample_audio_scene(np.random.default_rng(seed), cfg, kinds)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _inside_outside(samples: np.ndarray, sr: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    first, last = round(start * sr), round(end * sr)
    return samples[first:last], np.concatenate([samples[:first], samples[last:]])


def _dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize("kind", TONES)
@pytest.mark.parametrize("seed", range(4))
def test_energy_inside_span_dwarfs_outside(kind, seed):
    scene = _scene(seed, (kind,))
    samples = synthesize(scene)
    assert len(samples) == round(scene.duration * scene.sample_rate)
    span = scene.target_event.span
    inside, outside = _inside_outside(samples, scene.sample_rate, span.start, span.end)
    assert _rms(inside) > 100 * _rms(outside)
    # boundaries sit on the span grid, and the event lasts the configured fraction
    grid = scene.duration / AudioWorldConfig().span_grid
    assert span.start / grid == pytest.approx(round(span.start / grid))
    assert 0.25 <= span.length / scene.duration <= 0.5


@pytest.mark.parametrize(("kind", "hz"), [("high_beep", HIGH_BEEP_HZ), ("low_tone", LOW_TONE_HZ)])
def test_tones_have_their_named_pitch(kind, hz):
    for seed in range(4):
        scene = _scene(seed, (kind,))
        span = scene.target_event.span
        inside, _ = _inside_outside(synthesize(scene), scene.sample_rate, span.start, span.end)
        assert _dominant_hz(inside, scene.sample_rate) == pytest.approx(hz, rel=0.06)


def test_distractor_is_another_kind_and_does_not_overlap():
    seen = 0
    for seed in range(60):
        scene = _scene(seed, TONES, distractor_prob=1.0)
        if len(scene.events) == 2:
            seen += 1
            a, b = scene.events
            assert a.end <= b.start and a.kind != b.kind
    assert seen > 40


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_written_clip_decodes_to_the_synthesised_samples(tmp_path, fmt):
    scene = _scene(1, TONES, formats=(fmt,), sample_rates=(22050,))
    path = tmp_path / f"a.{fmt}"
    write_audio(scene, path)
    decoded, sr = sf.read(path, dtype="float32")
    info = sf.info(path)
    assert (sr, info.format, info.subtype) == (22050, fmt.upper(), "PCM_16")
    np.testing.assert_allclose(decoded, synthesize(scene), atol=1 / 32768 + 1e-6)


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
def test_spoken_word_fills_its_span():
    scene = _scene(0, ("spoken_word",))
    samples = synthesize(scene)
    event = scene.target_event
    inside, outside = _inside_outside(samples, scene.sample_rate, event.start, event.end)
    assert event.word and _rms(inside) > 50 * _rms(outside)
    quarter = len(inside) // 4  # speech in the first and last quarter: stretched over the whole span
    assert _rms(inside[:quarter]) > 10 * _rms(outside) and _rms(inside[-quarter:]) > 10 * _rms(outside)


def test_world_audio_matches_its_targets(tiny_world):
    manifest, config = tiny_world
    for record in read_jsonl(manifest.path("audio_tg", "test")):
        target = record["target"]
        samples, sr = sf.read(manifest.root / record["sound"], dtype="float32")
        assert sr in config.audio.sample_rates
        assert len(samples) / sr == pytest.approx(target["duration"])
        (start, end), = target["spans"]
        inside, _ = _inside_outside(samples, sr, start, end)
        assert _rms(inside) > 0.05  # the queried sound is there (noise floor: 0.0005)
