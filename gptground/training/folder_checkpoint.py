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
    _fsync_dir(os.path.dirname(os.path.abspath(path)))  # make the renames durable
    remove(old)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
