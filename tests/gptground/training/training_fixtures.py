"""Helpers shared by the training tests: tiny recipes over a synthetic world, traces."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

from gptground.config import RecipeConfig, load_recipe
from gptground.model.lora import merged_state_dict
from gptground.synth import (
    STAGE_TASKS,
    AudioWorldConfig,
    ImageWorldConfig,
    SynthConfig,
    TaskCounts,
    VideoWorldConfig,
)

RECIPES = Path(__file__).resolve().parents[3] / "recipes" / "tiny"


def world_config() -> SynthConfig:
    """Four train records per task (a stage-1 epoch: 12 draws, 3 steps at batch 4), two val."""
    all_tasks = [t for tasks in STAGE_TASKS.values() for t in tasks]
    return SynthConfig(
        seed=0,
        train=TaskCounts(**{t: 4 for t in all_tasks}),
        val=TaskCounts(**{t: 2 for t in all_tasks}),
        test=TaskCounts(),
        image=ImageWorldConfig(sizes=((64, 64),)),
        video=VideoWorldConfig(sizes=((64, 48),), fps=(8,), durations=(2.0,)),  # decord misreads 48x48 clips
        audio=AudioWorldConfig(sample_rates=(16000,), durations=(2.0,), sound_loc_duration=1.0),
        workers=1,
    )


def tiny_overrides(world: Path, out: Path) -> list[str]:
    """key=value overrides that make a tiny recipe train a step in well under a second."""
    return [
        f"data.dir={world}",
        f"run.output_dir={out}",
        "model.decoder.tiny.hidden_size=32",
        "model.decoder.tiny.num_layers=1",
        "model.decoder.tiny.num_heads=2",
        "model.decoder.tiny.intermediate_size=64",
        "model.modalities.video.num_frames=4",
        "data.batch_size=4",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "trainer.limit_val_batches=1",
    ]


def tiny_recipe(stage: int, world: Path, out: Path, *extra: str) -> RecipeConfig:
    """recipes/tiny/stage<N>.yaml at test size, with ``extra`` overrides last."""
    return load_recipe(str(RECIPES / f"stage{stage}.yaml"), [*tiny_overrides(world, out), *extra])


def read_trace(folder: Path) -> dict[int, list[dict]]:
    """rank -> the SampleTrace lines that rank wrote, in order."""
    return {
        int(p.stem.removeprefix("rank-")): [json.loads(line) for line in p.read_text().splitlines()]
        for p in sorted(folder.glob("rank-*.jsonl"))
    }


class CrashAt(L.Callback):
    """Raises ``Crash`` before training batch ``step + 1``: step ``step``'s checkpoint exists."""

    class Crash(RuntimeError):
        """The simulated kill."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise CrashAt.Crash(f"simulated crash after step {self.step}")


class Snapshot(L.Callback):
    """Copies the weights a model folder of ``pl_module.model`` would hold (every parameter,
    LoRA and new-token rows merged) at fit start and at train end, and the ids of the
    modality tokens of the model being trained."""

    def __init__(self):
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}
        self.new_token_ids = torch.empty(0, dtype=torch.long)

    def on_fit_start(self, trainer, pl_module):
        self.before = _exported(pl_module.model)
        self.new_token_ids = pl_module.model.new_token_ids.clone()

    def on_train_end(self, trainer, pl_module):
        self.after = _exported(pl_module.model)


def _exported(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in merged_state_dict(model).items()}
