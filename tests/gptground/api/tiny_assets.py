"""A tiny synthetic world and a tiny untrained model folder for API and evaluation tests.

The model has random weights, so its own answers are garbage text: tests that check values
fix the answer by construction (``scripted.script_answers``) and assert the boxes in pixels
and spans in seconds that come back; the others check parse reporting, caching and
process-count invariance.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gptground.config import load_recipe
from gptground.model.build import build_model
from gptground.model.folder import save_model_folder
from gptground.synth import (
    AudioWorldConfig,
    ImageWorldConfig,
    SynthConfig,
    TaskCounts,
    VideoWorldConfig,
    generate_world,
)

REPO = Path(__file__).resolve().parents[3]
SMALL = [  # the tiny recipe shrunk further: every part one layer, narrow
    "model.decoder.tiny.hidden_size=32",
    "model.decoder.tiny.num_layers=1",
    "model.decoder.tiny.num_heads=2",
    "model.decoder.tiny.intermediate_size=64",
    "model.modalities.image.tiny.hidden_size=32",
    "model.modalities.image.tiny.num_heads=2",
    "model.modalities.image.image_size=32",
    "model.modalities.video.num_frames=4",
    "model.modalities.video.num_queries=4",
    "model.modalities.video.adapter_hidden_size=32",
    "model.modalities.video.adapter_num_heads=2",
    "model.modalities.video.adapter_intermediate_size=64",
]


def world_config() -> SynthConfig:
    """Test split only: a few items per stage-2 task, non-square images, short clips."""
    return SynthConfig(
        train=TaskCounts(),
        val=TaskCounts(),
        test=TaskCounts(rec=5, video_tg=3, audio_tg=3, sound_loc=2),
        image=ImageWorldConfig(sizes=((64, 64), (80, 48))),
        # 64 px wide: decord misreads 48-px-wide mpeg4 frames
        video=VideoWorldConfig(sizes=((64, 48), (64, 64)), fps=(8,), durations=(2.0, 3.0)),
        audio=AudioWorldConfig(sample_rates=(16000,), durations=(2.0,), sound_loc_duration=1.0),
        workers=1,
    )


def make_world(folder: Path):
    """Generate the tiny world into ``folder``; returns its manifest."""
    return generate_world(folder, world_config(), progress=False)


def make_model_folder(folder: Path) -> str:
    """Save an untrained tiny model (image, video, audio) to ``folder``; returns its path."""
    recipe = load_recipe(str(REPO / "recipes/tiny/stage2.yaml"), SMALL)
    torch.manual_seed(0)
    model, tokenizer = build_model(recipe.model)
    return save_model_folder(
        model, tokenizer, recipe.model, str(folder),
        template=recipe.data.template, grounding_format=recipe.data.grounding_format,
    )
