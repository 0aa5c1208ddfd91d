"""Atomic checkpoint writes (a kill during a save never leaves a checkpoint that loads wrong)
and data-only reads (see ``safe_load``)."""

from __future__ import annotations

import os

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from gptground.training.safe_load import load_weights_only


TMP_INFIX = ".tmp-"  # a file being written is ``<path>.tmp-<pid>``


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``<path>.tmp-<pid>``, syncs it, and renames it over ``path``; reads data only.

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
        tmp = f"{path}{TMP_INFIX}{os.getpid()}"
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            _fsync_file(tmp)
            os.replace(tmp, path)
            fsync_dir(os.path.dirname(os.path.abspath(path)))  # make the rename itself durable
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only: bool | None = None):
        """Tensors and plain containers only, whatever ``weights_only`` Lightning passes.

        Raises:
            UnsafeCheckpointError: the checkpoint needs a Python global (named in the message).
        """
        del weights_only  # None (Lightning's default) or False would let pickled code run
        if not isinstance(path, str) or "://" not in path:
            path = os.fspath(path)
            if not os.path.exists(path):
                raise FileNotFoundError(f"checkpoint not found: {path}")
        return load_weights_only(path, map_location=map_location)


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
