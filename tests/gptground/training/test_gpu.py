"""Training on CUDA: a bf16-mixed step, the FSDP strategy, and the CUDA random state on resume.

Marked ``gpu``: skipped by default and without a CUDA device; ``python -m pytest -m gpu``
runs them (each well under a minute on one GPU; the multi-GPU case needs two).
"""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.distributed.fsdp import FullyShardedDataParallel
from training_fixtures import CrashAt, Snapshot, tiny_recipe

from gptground.training.fsdp_checkpoint import ShardedFSDPStrategy
from gptground.training.run import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ON_GPU = ("trainer.accelerator=gpu", "trainer.devices=1")
ROOT = Path(__file__).resolve().parents[3]


class StepWatch(L.Callback):
    """Per global step: the loss, the CUDA RNG state before the batch, the dtype that the
    first decoder layer's q_proj computed in, and the type of the strategy."""

    def __init__(self, watch_dtype: bool = False):
        self.watch_dtype = watch_dtype
        self.losses: dict[int, float] = {}
        self.cuda_rng: dict[int, torch.Tensor] = {}
        self.matmul_dtypes: set[torch.dtype] = set()
        self.strategy = None
        self.fsdp_units = 0

    def on_train_start(self, trainer, pl_module):
        self.strategy = trainer.strategy
        self.fsdp_units = sum(isinstance(m, FullyShardedDataParallel) for m in trainer.strategy.model.modules())
        if self.watch_dtype:
            q_proj = pl_module.model.decoder.model.layers[0].self_attn.q_proj
            q_proj.register_forward_hook(lambda module, args, out: self.matmul_dtypes.add(out.dtype))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.cuda_rng[trainer.global_step + 1] = torch.cuda.get_rng_state().clone()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


def _changed(snapshot: Snapshot, name: str) -> bool:
    return not torch.equal(snapshot.before[name].cpu(), snapshot.after[name].cpu())


def test_a_bf16_mixed_step_on_cuda_trains_the_trainable_parts_only(world, tmp_path):
    snapshot, watch = Snapshot(), StepWatch(watch_dtype=True)
    train(tiny_recipe(1, world, tmp_path, *ON_GPU, "trainer.precision=bf16-mixed", "trainer.max_steps=2"),
          callbacks=[snapshot, watch])

    assert next(iter(snapshot.before.values())).is_cuda
    assert watch.matmul_dtypes == {torch.bfloat16}  # autocast ran the matmuls in bf16
    assert sorted(watch.losses) == [1, 2] and all(math.isfinite(v) for v in watch.losses.values())
    embed = "decoder.model.embed_tokens.weight"
    frozen = [n for n in snapshot.before if (n.startswith("decoder.") and n != embed) or ".encoder." in n]
    adapters = [n for n in snapshot.before if re.match(r"modalities\.\w+\.adapter\.", n)]
    assert frozen and adapters
    assert [n for n in frozen if _changed(snapshot, n)] == []
    assert sum(_changed(snapshot, n) for n in adapters) > len(adapters) // 2
    assert all(snapshot.after[n].dtype == torch.float32 for n in adapters)  # fp32 master weights


def test_fsdp_wraps_the_decoder_layers_trains_and_resumes_from_its_sharded_checkpoint(world, tmp_path):
    watch = StepWatch()
    recipe = tiny_recipe(1, world, tmp_path, *ON_GPU, "trainer.strategy=fsdp", "trainer.precision=bf16-mixed",
                         "trainer.max_steps=2", "trainer.checkpoint.every_n_train_steps=1")
    run_dir = train(recipe, callbacks=[watch])

    assert isinstance(watch.strategy, ShardedFSDPStrategy)
    assert watch.fsdp_units >= 2  # the root and one unit per LlamaDecoderLayer (num_layers=1)
    assert all(math.isfinite(v) for v in watch.losses.values()) and sorted(watch.losses) == [1, 2]
    assert (Path(run_dir) / "checkpoints" / "last.ckpt").is_dir()  # sharded folder
    assert (Path(run_dir) / "model").is_dir()

    recipe.trainer.resume_from = "last"
    recipe.trainer.max_steps = 3
    resumed = StepWatch()
    train(recipe, callbacks=[resumed])
    assert sorted(resumed.losses) == [3] and math.isfinite(resumed.losses[3])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_fsdp_on_two_gpus_trains_a_step(world, tmp_path):
    """Two processes (Lightning relaunches the command per device), one step, one model folder."""
    command = [sys.executable, "-m", "gptground.cli", "run", str(ROOT / "recipes" / "tiny" / "stage1.yaml"),
               f"data.dir={world}", f"run.output_dir={tmp_path}", "trainer.accelerator=gpu", "trainer.devices=2",
               "trainer.strategy=fsdp", "trainer.precision=bf16-mixed", "trainer.max_steps=2",
               "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path([line for line in done.stdout.splitlines() if line.startswith("run folder: ")][-1][len("run folder: "):])
    assert (run_dir / "model").is_dir()
    with open(run_dir / "metrics.csv") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert losses and all(math.isfinite(v) for v in losses)


def test_the_cuda_random_state_continues_after_a_resume(world, tmp_path):
    # Dropout on the GPU draws from the CUDA generator; fp32 keeps the losses comparable.
    extra = (*ON_GPU, "trainer.precision=32-true", "model.modalities.video.adapter_dropout=0.3",
             "model.modalities.audio.qformer_dropout=0.3",
             "trainer.checkpoint.every_n_train_steps=1", "trainer.max_steps=4")
    reference = StepWatch()
    train(tiny_recipe(1, world, tmp_path / "a", *extra), callbacks=[reference])
    assert not torch.equal(reference.cuda_rng[2], reference.cuda_rng[4])  # dropout consumed it

    recipe = tiny_recipe(1, world, tmp_path / "b", *extra)
    before, after = StepWatch(), StepWatch()
    with pytest.raises(CrashAt.Crash):
        train(recipe, callbacks=[CrashAt(2), before])
    recipe.trainer.resume_from = "last"
    train(recipe, callbacks=[after])

    assert sorted(after.cuda_rng) == [3, 4]
    for step in (3, 4):
        assert torch.equal(after.cuda_rng[step], reference.cuda_rng[step]), f"CUDA RNG differs before step {step}"
        assert after.losses[step] == pytest.approx(reference.losses[step], rel=1e-5)
