"""Atomic checkpoint writes: a kill during a save never leaves a checkpoint that loads wrong."""

from __future__ import annotations

import os

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``<path>.tmp-<pid>``, syncs it, and renames it over ``path``.

    Rename is atomic on POSIX, so ``path`` always holds either the previous complete
    checkpoint or the new complete one. Remote paths (``s3://`` ...) are written as
    Lightning writes them: object stores publish an object only when its upload completes.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = os.fspath(path)
        if "://" in path and not path.startswith("file://"):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = path.removeprefix("file://")
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            _fsync_file(tmp)
            os.replace(tmp, path)
            fsync_dir(os.path.dirname(os.path.abspath(path)))  # make the rename itself durable
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
