"""DeepSpeed checkpoints: folders written atomically, holding only what trains.

DeepSpeed writes ``last.ckpt`` as a folder of per-rank files; written in place, a kill
mid-save leaves a folder that looks complete and is not. Here every rank writes into
``<path>.tmp`` and rank 0 renames it in (see ``folder_checkpoint``). Frozen parameters
are left out of the module files (``exclude_frozen_parameters``): the frozen weights come
from building the model again, checked by the fingerprint in the checkpoint.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import DeepSpeedStrategy, StrategyRegistry

from gptground.training.folder_checkpoint import save_folder_atomically


class AtomicDeepSpeedStrategy(DeepSpeedStrategy):
    """DeepSpeedStrategy whose folder checkpoints appear complete or not at all."""

    def __init__(self, **kwargs):
        super().__init__(exclude_frozen_parameters=True, **kwargs)

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Any = None) -> None:
        save_folder_atomically(
            self, filepath, lambda tmp: super(AtomicDeepSpeedStrategy, self).save_checkpoint(checkpoint, tmp, storage_options)
        )


def deepspeed_strategy(name: str) -> AtomicDeepSpeedStrategy:
    """The strategy Lightning registers as ``name`` (e.g. "deepspeed_stage_2"), made atomic."""
    return AtomicDeepSpeedStrategy(**StrategyRegistry[name]["init_params"])
