"""Run folders: ``<run.output_dir>/<run.name>/version_<k>/``, and where to resume from.

A run folder holds ``recipe.yaml`` (the resolved recipe), ``metrics.csv``,
``checkpoints/`` (``last.ckpt`` and the best one) and, after training, ``model/``.
Every start of a run, resumed or not, gets a new version folder, so the metrics of an
interrupted run are never overwritten; ``trainer.resume_from: last`` reads the newest
earlier version folder of the same run name that holds ``checkpoints/last.ckpt``: a file,
or a folder under FSDP (sharded) and DeepSpeed. Folder checkpoints are published by
renames (see ``folder_checkpoint``), so one that exists is complete.
"""

from __future__ import annotations

import os
import re

from gptground.training.folder_checkpoint import OLD_SUFFIX

LAST = "last"  # the value of `trainer.resume_from` that means "the newest last.ckpt"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
_VERSION = re.compile(r"version_(\d+)")


def check_writable(path: str, key: str = "run.output_dir") -> None:
    """Create ``path`` if needed and write a probe file; fail before any model is built.

    Raises:
        PermissionError: ``path`` cannot be created or written (``key`` names the recipe key).
    """
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise PermissionError(f"run folder {path!r} is not writable (`{key}`): {e}") from e


def find_last_checkpoint(output_dir: str, name: str) -> str:
    """``last.ckpt`` of the highest ``version_<k>`` under ``<output_dir>/<name>`` that has one.

    ``last.ckpt`` may be a file or a folder; when a folder save was killed between its two
    renames, the previous complete one is ``last.ckpt.old`` and is taken instead.

    Raises:
        FileNotFoundError: no version folder of that run holds a last checkpoint.
    """
    root = os.path.join(output_dir, name)
    versions = []
    if os.path.isdir(root):
        versions = sorted(int(m.group(1)) for d in os.listdir(root) if (m := _VERSION.fullmatch(d)))
    for version in reversed(versions):
        path = os.path.join(root, f"version_{version}", CHECKPOINT_DIR, LAST_CHECKPOINT)
        for candidate in (path, path + OLD_SUFFIX):
            if os.path.exists(candidate):
                return candidate
    raise FileNotFoundError(
        f"`trainer.resume_from: last` found no {root}/version_*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT} "
        f"(`run.output_dir` and `run.name` pick the run); pass a checkpoint path instead"
    )


def resolve_resume(resume_from: str | None, output_dir: str, name: str) -> str | None:
    """The checkpoint path a run resumes from (None: start fresh).

    Call it before the run's logger picks its new version folder.

    Raises:
        FileNotFoundError: ``resume_from`` is a path that does not exist, or "last" finds none.
    """
    if resume_from is None:
        return None
    if resume_from == LAST:
        return find_last_checkpoint(output_dir, name)
    if "://" not in resume_from and not os.path.exists(resume_from):  # a file or a folder
        raise FileNotFoundError(f"checkpoint not found: {resume_from!r} (`trainer.resume_from`)")
    return resume_from
