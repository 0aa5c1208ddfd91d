"""DeepSpeed checkpoints: folders written atomically, holding only what trains, read as data.

DeepSpeed writes ``last.ckpt`` as a folder of per-rank files; written in place, a kill
mid-save leaves a folder that looks complete and is not. Here every rank writes into
``<path>.tmp`` and rank 0 renames it in (see ``folder_checkpoint``). Frozen parameters
are left out of the module files (``exclude_frozen_parameters``): the frozen weights come
from building the model again, checked by the fingerprint in the checkpoint.

DeepSpeed's own checkpoint engine reads every file with ``torch.load(weights_only=False)``;
while this strategy loads, the engine's reads go through ``safe_load`` instead. DeepSpeed's
optimizer files hold a few of its own record types besides tensors (the loss scaler, the
ZeRO stage enum, fragment addresses): those, and only those, are allowed for these reads.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, StrategyRegistry

from gptground.training.folder_checkpoint import save_folder_atomically
from gptground.training.safe_load import load_weights_only


class AtomicDeepSpeedStrategy(DeepSpeedStrategy):
    """DeepSpeedStrategy whose folder checkpoints appear complete or not at all."""

    def __init__(self, **kwargs):
        super().__init__(exclude_frozen_parameters=True, **kwargs)

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Any = None) -> None:
        save_folder_atomically(
            self, filepath, lambda tmp: super(AtomicDeepSpeedStrategy, self).save_checkpoint(checkpoint, tmp, storage_options)
        )

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        """Lightning's DeepSpeed load, every file read with ``weights_only=True``.

        Raises:
            UnsafeCheckpointError: a file of the checkpoint needs a Python global.
        """
        engine = getattr(self, "deepspeed_engine", None)
        with weights_only_reads(getattr(engine, "checkpoint_engine", None)):
            return super().load_checkpoint(checkpoint_path, True)


@contextlib.contextmanager
def weights_only_reads(checkpoint_engine):
    """While inside, ``checkpoint_engine.load`` (DeepSpeed's per-file read) loads data only.

    Set on this one engine object, not on DeepSpeed's class: nothing else in the process
    changes. ``None`` (no engine yet: a full-weights file goes through our CheckpointIO) is
    left alone.
    """
    if checkpoint_engine is None:
        yield
        return
    allowed = deepspeed_record_types()

    def load(path, map_location=None):
        with torch.serialization.safe_globals(allowed):
            return load_weights_only(path, map_location=map_location)

    checkpoint_engine.load = load
    try:
        yield
    finally:
        del checkpoint_engine.load  # back to the class's method


def deepspeed_record_types() -> list[type]:
    """DeepSpeed's plain state records that its optimizer checkpoint files pickle.

    Each is rebuilt from stored attributes (classes without custom unpickling) or from a
    value (the enum); none runs code of the file's choosing.
    """
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def deepspeed_strategy(name: str) -> AtomicDeepSpeedStrategy:
    """The strategy Lightning registers as ``name`` (e.g. "deepspeed_stage_2"), made atomic."""
    return AtomicDeepSpeedStrategy(**StrategyRegistry[name]["init_params"])
