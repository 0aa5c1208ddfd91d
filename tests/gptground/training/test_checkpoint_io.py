"""AtomicCheckpointIO: a save that fails half-way leaves the previous checkpoint intact."""

from __future__ import annotations

import pytest
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from gptground.training.checkpoint_io import AtomicCheckpointIO


def test_a_save_replaces_the_checkpoint_and_leaves_no_temporary_file(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    io.save_checkpoint({"step": 2, "w": torch.ones(3)}, path)
    assert io.load_checkpoint(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_failure_mid_save_keeps_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(4.0)}, path)

    def dies_half_way(self, checkpoint, target, storage_options=None):
        with open(target, "wb") as f:
            f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", dies_half_way)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(4)}, path)

    monkeypatch.undo()
    previous = io.load_checkpoint(path)
    assert previous["step"] == 1 and torch.equal(previous["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # the partial file is gone
