"""Atomic folder checkpoints (FSDP sharded, DeepSpeed): write a sibling, then rename it in.

A folder cannot replace a non-empty folder in one rename, so publishing takes two: the
previous checkpoint moves to ``<path>.old``, the new one moves to ``path``, the old one is
removed. At every instant one complete checkpoint exists under ``path`` or, between the two
renames only, under ``<path>.old``; ``run_folder.find_last_checkpoint`` looks there too.
A kill while writing leaves only ``<path>.tmp``, which the next save removes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from gptground.training.checkpoint_io import fsync_dir

TMP_SUFFIX = ".tmp"  # the folder being written
OLD_SUFFIX = ".old"  # the previous checkpoint, between the two renames of a publish


def temporary_sibling(path: str) -> str:
    """Where a folder checkpoint for ``path`` is written: the same name on every rank."""
    return os.fspath(path) + TMP_SUFFIX


def remove(path: str) -> None:
    """Remove a file or folder if it exists."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def publish_folder(tmp: str, path: str) -> None:
    """Move the complete checkpoint ``tmp`` to ``path``, replacing what is there (rank 0 only)."""
    path = os.fspath(path)
    old = path + OLD_SUFFIX
    if os.path.lexists(path):
        remove(old)  # left by a kill after the first rename of an earlier publish: path is newer
        os.rename(path, old)
    os.rename(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))  # make the renames durable
    remove(old)


def save_folder_atomically(strategy, filepath, write: Callable[[str], None]) -> None:
    """Every rank runs ``write(tmp)`` into ``<path>.tmp``; rank 0 then publishes it as ``path``.

    ``strategy`` is the distributed strategy (its broadcast, barriers and rank); every rank
    calls this, and returns once the checkpoint is published.
    """
    path = os.fspath(strategy.broadcast(filepath))
    tmp = temporary_sibling(path)
    if strategy.global_rank == 0:
        remove(tmp)  # a save killed half-way
    strategy.barrier("checkpoint-tmp-clean")
    write(tmp)
    strategy.barrier("checkpoint-written")  # every rank's files are on disk before the rename
    if strategy.global_rank == 0:
        publish_folder(tmp, path)
    strategy.barrier("checkpoint-published")
