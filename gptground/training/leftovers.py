"""Temporary files that a kill during a save leaves in a run's folders, removed at its next start.

Saves write aside and rename in (see ``checkpoint_io``, ``folder_checkpoint``,
``model.folder``), so a kill never damages a checkpoint, but it leaves the thing being
written. Only these exact names are removed, and only inside
``<run.output_dir>/<run.name>/version_*/``:

- ``checkpoints/<name>.ckpt.tmp-<pid>``: a checkpoint file being written (AtomicCheckpointIO);
  kept while process ``<pid>`` is alive on this machine.
- ``checkpoints/<name>.ckpt.tmp/``: a folder checkpoint being written (FSDP sharded, DeepSpeed).
- ``.tmp-<8 characters>/``: a model folder being written (``save_model_folder``).

``<name>.ckpt.old`` and ``.old-*`` folders are kept: after a kill between the two renames of
a publish they hold the only complete copy (``find_last_checkpoint`` reads ``.old``).
"""

from __future__ import annotations

import logging
import os
import re

import lightning as L

from gptground.training.checkpoint_io import TMP_INFIX
from gptground.training.folder_checkpoint import TMP_SUFFIX, remove
from gptground.training.run_folder import CHECKPOINT_DIR

log = logging.getLogger(__name__)

_VERSION = re.compile(r"version_\d+")
_CHECKPOINT_FILE = re.compile(rf".+\.ckpt{re.escape(TMP_INFIX)}(\d+)")
_CHECKPOINT_FOLDER = re.compile(rf".+\.ckpt{re.escape(TMP_SUFFIX)}")
_MODEL_FOLDER = re.compile(r"\.tmp-[a-z0-9_]{8}")  # tempfile.mkdtemp(prefix=".tmp-")


def find_leftovers(run_root: str) -> list[str]:
    """Paths of the temporary files and folders of killed saves under ``run_root``."""
    found = []
    versions = sorted(d for d in os.listdir(run_root) if _VERSION.fullmatch(d)) if os.path.isdir(run_root) else []
    for version in versions:
        folder = os.path.join(run_root, version)
        found += [os.path.join(folder, d) for d in sorted(os.listdir(folder))
                  if _MODEL_FOLDER.fullmatch(d) and os.path.isdir(os.path.join(folder, d))]
        checkpoints = os.path.join(folder, CHECKPOINT_DIR)
        if not os.path.isdir(checkpoints):
            continue
        for name in sorted(os.listdir(checkpoints)):
            path = os.path.join(checkpoints, name)
            if (m := _CHECKPOINT_FILE.fullmatch(name)) and os.path.isfile(path) and not _alive(int(m.group(1))):
                found.append(path)
            elif _CHECKPOINT_FOLDER.fullmatch(name) and os.path.isdir(path):
                found.append(path)
    return found


def remove_leftovers(run_root: str) -> list[str]:
    """Remove what ``find_leftovers`` finds, logging each; returns the removed paths."""
    removed = find_leftovers(run_root)
    for path in removed:
        log.warning("removing %s, left by a save that was killed", path)
        remove(path)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a save of it may still be running)."""
    if pid == os.getpid():
        return False  # this process has not started saving yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class CleanLeftovers(L.Callback):
    """Rank 0 removes the leftovers of ``run_root`` when fitting is set up; the other ranks
    wait at a barrier, so no rank saves before the cleaning is done."""

    def __init__(self, run_root: str):
        self.run_root = run_root

    def setup(self, trainer, pl_module, stage):
        if trainer.is_global_zero:
            remove_leftovers(self.run_root)
        trainer.strategy.barrier("leftovers-removed")
