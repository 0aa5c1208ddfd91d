"""Atomic checkpoint writes: a kill during a save never leaves a checkpoint that loads wrong."""

from __future__ import annotations

import os

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``<path>.tmp-<pid>`` and renames it over ``path`` (rename is atomic on POSIX)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
