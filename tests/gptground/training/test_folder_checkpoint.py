"""Folder checkpoints (FSDP sharded, DeepSpeed) are published by renames: a kill at any
point leaves a complete checkpoint that `trainer.resume_from=last` finds."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.strategies import deepspeed as lightning_deepspeed

from gptground.training.deepspeed_checkpoint import deepspeed_strategy
from gptground.training.folder_checkpoint import publish_folder, temporary_sibling
from gptground.training.run_folder import find_last_checkpoint, resolve_resume


def _folder(path, step: int) -> str:
    os.makedirs(path)
    torch.save({"step": step}, os.path.join(path, "shard-0.pt"))
    return path


def _step(path) -> int:
    return torch.load(os.path.join(path, "shard-0.pt"))["step"]


def test_publish_replaces_the_folder_and_leaves_nothing_else(tmp_path):
    last = str(tmp_path / "last.ckpt")
    publish_folder(_folder(temporary_sibling(last), 1), last)
    publish_folder(_folder(temporary_sibling(last), 2), last)
    assert _step(last) == 2
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_a_kill_between_the_two_renames_leaves_the_previous_checkpoint_found(tmp_path, monkeypatch):
    run = tmp_path / "stage" / "version_0" / "checkpoints"
    last = str(run / "last.ckpt")
    publish_folder(_folder(temporary_sibling(last), 1), last)
    real_rename = os.rename

    def killed_at_the_second_rename(src, dst):
        if src.endswith(".tmp"):
            raise KeyboardInterrupt("killed")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", killed_at_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        publish_folder(_folder(temporary_sibling(last), 2), last)
    monkeypatch.undo()

    found = find_last_checkpoint(str(tmp_path), "stage")
    assert found == last + ".old" and _step(found) == 1
    publish_folder(_folder(last + ".tmp-next", 3), last)  # the next save recovers the layout
    assert sorted(os.listdir(run)) == ["last.ckpt", "last.ckpt.tmp"] and _step(last) == 3


def test_resume_finds_folder_checkpoints(tmp_path):
    last = tmp_path / "stage" / "version_3" / "checkpoints" / "last.ckpt"
    _folder(str(last), 1)
    assert find_last_checkpoint(str(tmp_path), "stage") == str(last)
    assert resolve_resume(str(last), str(tmp_path), "stage") == str(last)


class FakeEngine:
    """Writes what a DeepSpeed engine writes: ``<dir>/latest`` and ``<dir>/<tag>/`` files."""

    def __init__(self, fail: bool = False):
        self.fail, self.calls = fail, []

    def save_checkpoint(self, save_dir, client_state, tag, exclude_frozen_parameters):
        self.calls.append((save_dir, exclude_frozen_parameters))
        os.makedirs(os.path.join(save_dir, tag), exist_ok=True)
        torch.save(client_state, os.path.join(save_dir, tag, "mp_rank_00_model_states.pt"))
        if self.fail:
            raise OSError("No space left on device")
        with open(os.path.join(save_dir, "latest"), "w") as f:
            f.write(tag)


@pytest.fixture
def strategy(monkeypatch):
    """The atomic ZeRO-2 strategy, built as if DeepSpeed were installed (Lightning's
    constructor only sets DeepSpeed's log level; saving goes through the engine)."""
    logger = SimpleNamespace(setLevel=lambda level: None)
    monkeypatch.setitem(sys.modules, "deepspeed", SimpleNamespace(utils=SimpleNamespace(logging=SimpleNamespace(logger=logger))))
    monkeypatch.setattr(lightning_deepspeed, "_DEEPSPEED_AVAILABLE", True)
    monkeypatch.setattr(lightning_deepspeed, "_DEEPSPEED_GREATER_EQUAL_0_16", True)
    return deepspeed_strategy("deepspeed_stage_2")


def test_deepspeed_saves_into_a_sibling_and_renames_it_in(tmp_path, strategy):
    last = tmp_path / "last.ckpt"
    strategy.model = FakeEngine()
    for step in (1, 2):
        strategy.save_checkpoint({"global_step": step, "state_dict": {}}, str(last))
    saved = torch.load(last / "checkpoint" / "mp_rank_00_model_states.pt")
    assert saved == {"global_step": 2} and (last / "latest").read_text() == "checkpoint"
    assert strategy.model.calls == [(str(last) + ".tmp", True)] * 2  # frozen parameters left out
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_a_deepspeed_save_that_fails_keeps_the_previous_checkpoint(tmp_path, strategy):
    last = tmp_path / "last.ckpt"
    strategy.model = FakeEngine()
    strategy.save_checkpoint({"global_step": 1}, str(last))
    strategy.model = FakeEngine(fail=True)
    with pytest.raises(OSError, match="No space left"):
        strategy.save_checkpoint({"global_step": 2}, str(last))
    assert torch.load(last / "checkpoint" / "mp_rank_00_model_states.pt") == {"global_step": 1}
    strategy.model = FakeEngine()
    strategy.save_checkpoint({"global_step": 3}, str(last))  # clears the half-written sibling
    assert os.listdir(tmp_path) == ["last.ckpt"]
