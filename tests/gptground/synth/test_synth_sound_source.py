"""Sound-source pairs: the sound's pitch names the source's colour, its timbre the kind."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from gptground.synth import AudioWorldConfig, ImageWorldConfig, read_jsonl
from gptground.synth.sound_source import (
    PITCH_OF_COLOUR,
    sample_sound_loc_scene,
    shape_sound,
    shape_tone,
)
from gptground.synth.vocabulary import PALETTE


def _spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.rfftfreq(len(x), 1 / sr), np.abs(np.fft.rfft(x * np.hanning(len(x))))


def _level_at(freqs, spectrum, hz: float) -> float:
    band = (freqs > hz * 0.97) & (freqs < hz * 1.03)
    return float(spectrum[band].max())


def test_pitch_names_the_colour_and_colours_are_unique():
    looks, audio = ImageWorldConfig(kinds=("circle", "square", "triangle", "diamond")), AudioWorldConfig()
    for seed in range(40):
        scene = sample_sound_loc_scene(np.random.default_rng(seed), looks, audio)
        colours = [s.colour for s in scene.image.shapes]
        assert len(scene.image.shapes) >= 2 and len(set(colours)) == len(colours)
        freqs, spectrum = _spectrum(shape_sound(scene), scene.sample_rate)
        dominant = freqs[spectrum.argmax()]
        assert dominant == pytest.approx(PITCH_OF_COLOUR[scene.source_shape.colour], rel=0.03)


def test_timbres_differ_in_their_harmonics():
    sr, hz = 16000, 500.0
    def harmonics(timbre):
        freqs, spectrum = _spectrum(shape_tone(timbre, hz, sr, sr), sr)
        base = _level_at(freqs, spectrum, hz)
        return [_level_at(freqs, spectrum, k * hz) / base for k in (2, 3)]
    sine, square, saw = harmonics("sine"), harmonics("square"), harmonics("sawtooth")
    assert max(sine) < 0.01
    assert square[0] < 0.01 and square[1] > 0.2  # odd harmonics only
    assert saw[0] > 0.3 and saw[1] > 0.2  # every harmonic


def test_no_partial_above_nyquist():
    sr = 16000
    freqs, spectrum = _spectrum(shape_tone("sawtooth", PITCH_OF_COLOUR["white"], sr, sr), sr)
    assert spectrum[freqs > 0.45 * sr].max() < 1e-3 * spectrum.max()


def test_world_pairs_point_at_the_sounding_shape(tiny_world):
    manifest, _ = tiny_world
    for record in read_jsonl(manifest.path("sound_loc", "test")):
        assert record["conversations"][0]["value"].startswith("<sound>\n<image>\n")
        target = record["target"]
        colour = target["query"].split()[-2]
        samples, sr = sf.read(manifest.root / record["sound"], dtype="float32")
        freqs, spectrum = _spectrum(samples, sr)
        assert freqs[spectrum.argmax()] == pytest.approx(PITCH_OF_COLOUR[colour], rel=0.03)
        x1, y1, x2, y2 = target["boxes"][0]
        pixels = np.asarray(Image.open(manifest.root / record["image"]).convert("RGB"))
        assert np.all(pixels[y1:y2, x1:x2] == PALETTE[colour], axis=-1).mean() >= 0.4


def _colour_of_sound(path) -> str:
    samples, sr = sf.read(path, dtype="float32")
    freqs, spectrum = _spectrum(samples, sr)
    return min(PITCH_OF_COLOUR, key=lambda c: abs(PITCH_OF_COLOUR[c] - freqs[spectrum.argmax()]))


def test_train_images_sound_once_per_shape_so_the_image_alone_does_not_answer(tiny_world):
    manifest, config = tiny_world
    per_image = config.audio.sound_loc_sounds_per_image
    records = read_jsonl(manifest.path("sound_loc", "train"))
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["image"], []).append(record)
    assert [len(g) for g in groups.values()] == [per_image, len(records) - per_image]
    first = next(iter(groups.values()))
    answers = {_colour_of_sound(manifest.root / r["sound"]): r["conversations"][1]["value"] for r in first}
    # 2-3 shapes and 3 sounds: every shape sounds, each colour always points at one box
    assert len(answers) >= 2 and len(set(answers.values())) == len(answers)
    assert len({r["sound"] for r in records}) == len(records)
    test_images = [r["image"] for r in read_jsonl(manifest.path("sound_loc", "test"))]
    assert len(set(test_images)) == len(test_images)


def test_source_captions_name_the_shape_each_sound_comes_from(tiny_world):
    manifest, _ = tiny_world
    records = read_jsonl(manifest.path("sound_source_caption", "train"))
    assert records
    for record in records:
        assert "image" not in record and record["conversations"][0]["value"].startswith("<sound>\n")
        colour = _colour_of_sound(manifest.root / record["sound"])
        assert record["conversations"][1]["value"].startswith(f"A {colour} ")
