"""SynthConfig validation, scaling and loading from YAML / key=value overrides."""

from __future__ import annotations

import pytest

from gptground.synth import (
    AudioWorldConfig,
    ImageWorldConfig,
    SynthConfig,
    SynthConfigError,
    TaskCounts,
    VideoWorldConfig,
)
from gptground.synth.cli import build_synth_config


@pytest.mark.parametrize(("make", "field"), [
    (lambda: ImageWorldConfig(colours=("red", "mauve")), "image.colours"),
    (lambda: ImageWorldConfig(kinds=()), "image.kinds"),
    (lambda: ImageWorldConfig(min_shapes=3, max_shapes=2), "image.min_shapes"),
    (lambda: ImageWorldConfig(small_side=(0.3, 0.5), large_side=(0.4, 0.5)), "image.small_side"),
    (lambda: ImageWorldConfig(sizes=((64,),)), "image.sizes"),
    (lambda: ImageWorldConfig(grid_px=0), "image.grid_px"),
    (lambda: VideoWorldConfig(sizes=((63, 48),)), "video.sizes"),
    (lambda: VideoWorldConfig(fps=(4,), durations=(2.0,), span_grid=16), "video.span_grid"),
    (lambda: VideoWorldConfig(events=("explode",)), "video.events"),
    (lambda: VideoWorldConfig(codec="vp9"), "video.codec"),
    (lambda: AudioWorldConfig(sample_rates=(4000,)), "audio.sample_rates"),
    (lambda: AudioWorldConfig(formats=("mp3",)), "audio.formats"),
    (lambda: AudioWorldConfig(event_frac=(0.3, 0.35), span_grid=8), "audio.event_frac"),
    (lambda: AudioWorldConfig(sound_loc_sounds_per_image=0), "audio.sound_loc_sounds_per_image"),
    (lambda: TaskCounts(rec=-1), "counts.rec"),
    (lambda: SynthConfig(scale=-1), "scale"),
    (lambda: SynthConfig(workers=0), "workers"),
    (lambda: SynthConfig(image=ImageWorldConfig(colours=("red",), max_shapes=1)), "image.colours"),
])
def test_invalid_fields_are_named(make, field):
    with pytest.raises(SynthConfigError, match=f"^{field}:"):
        make()


def test_scale_multiplies_train_counts_only():
    config = SynthConfig(scale=0.5, train=TaskCounts(rec=10, sound_loc=1), test=TaskCounts(rec=7))
    assert config.counts("train")["rec"] == 5
    assert config.counts("train")["sound_loc"] == 1  # never scaled below one record
    assert config.counts("train")["video_tg"] == 0
    assert config.counts("test")["rec"] == 7
    assert SynthConfig(scale=0, train=TaskCounts(rec=10)).counts("train")["rec"] == 0


def test_yaml_lists_become_tuples_and_configs_compare_by_value():
    config = ImageWorldConfig(sizes=[[64, 48]], colours=["red", "blue"])
    assert config == ImageWorldConfig(sizes=((64, 48),), colours=("red", "blue"))


def test_overrides_and_yaml_file(tmp_path):
    path = tmp_path / "world.yaml"
    path.write_text("seed: 7\nvideo:\n  fps: [8, 10]\n")
    config = build_synth_config(path, ["scale=0.25", "audio.span_grid=4"])
    assert (config.seed, config.scale, config.video.fps, config.audio.span_grid) == (7, 0.25, (8, 10), 4)


@pytest.mark.parametrize(("overrides", "key"), [
    (["video.fpss=3"], "video.fpss"),
    (["scale=abc"], "scale"),
    (["image.max_shapes=0"], "image.min_shapes"),
])
def test_bad_overrides_name_the_key(overrides, key):
    with pytest.raises(SynthConfigError, match=f"^{key}"):
        build_synth_config(None, overrides)
