"""Callbacks: the data position for exact resume, and the parameter table at start."""

from __future__ import annotations

import logging

import lightning as L

from gptground.data.dataset import ResumableLoader
from gptground.model.trainable import format_parameter_table, parameter_table

log = logging.getLogger(__name__)


class LoaderPosition(L.Callback):
    """Counts finished training batches into the loader's state (see ResumableLoader).

    Lightning runs checkpoint callbacks after all others, so a checkpoint saved at the end
    of a batch already counts that batch.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loader = trainer.train_dataloader
        if isinstance(loader, ResumableLoader):
            loader.consumed += 1


class ParameterTable(L.Callback):
    """Prints trainable and frozen parameter counts per part when fitting starts."""

    def on_fit_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            print(format_parameter_table(parameter_table(pl_module.model)), flush=True)
