"""Fault 6 of issue 17: temporary files of killed saves are removed at the next start of the
run; nothing else is touched."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from training_fixtures import CrashAt, tiny_recipe

from gptground.training.leftovers import find_leftovers
from gptground.training.run import train


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_resumed_run_removes_the_leftovers_of_killed_saves(world, tmp_path):
    recipe = tiny_recipe(1, world, tmp_path, "trainer.max_steps=3", "trainer.checkpoint.every_n_train_steps=1")
    with pytest.raises(CrashAt.Crash):
        train(recipe, callbacks=[CrashAt(2)])
    version0 = tmp_path / recipe.run.name / "version_0"
    checkpoints = version0 / "checkpoints"
    real = {p.name: p.read_bytes() for p in checkpoints.iterdir()}
    dead = _dead_pid()
    ours = [checkpoints / f"last.ckpt.tmp-{dead}", checkpoints / "last.ckpt.tmp", version0 / ".tmp-ab12_xyz"]
    ours[0].write_bytes(b"half a checkpoint")
    ours[1].mkdir()
    (ours[1] / "shard-0").write_bytes(b"half a shard")
    ours[2].mkdir()
    (ours[2] / "model.safetensors").write_bytes(b"half a model")
    live = checkpoints / f"last.ckpt.tmp-{os.getppid()}"  # a live process may still be writing it
    live.write_bytes(b"being written")
    others = [checkpoints / "notes.tmp-123", version0 / ".tmp-mine", checkpoints / f"last.ckpt.tmp-{dead}x",
              tmp_path / f"last.ckpt.tmp-{dead}", checkpoints / "last.ckpt.old"]
    for path in others:
        path.write_text("someone else's")

    recipe.trainer.resume_from = "last"
    train(recipe)

    assert not any(p.exists() for p in ours)
    assert live.exists() and all(p.exists() for p in others)
    assert {p.name: p.read_bytes() for p in checkpoints.iterdir() if p.name in real} == real
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 2


def test_find_leftovers_needs_a_run_folder(tmp_path):
    assert find_leftovers(str(tmp_path / "absent")) == []
