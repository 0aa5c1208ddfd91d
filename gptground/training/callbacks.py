"""Callbacks: the data position and random state for exact resume, a parameter table at
start, and an optional per-step trace of what each rank trained on.

Environment:
    GPTGROUND_TRACE_SAMPLES: a folder; when set, every rank appends one JSON line per
        training batch to ``<folder>/rank-<global rank>.jsonl`` (see ``SampleTrace``). For
        debugging data order, sharding and resume; off by default.
"""

from __future__ import annotations

import json
import os

import lightning as L
import torch

from gptground.data.dataset import ResumableLoader
from gptground.model.trainable import format_parameter_table, parameter_table

TRACE_ENV = "GPTGROUND_TRACE_SAMPLES"


class LoaderPosition(L.Callback):
    """Counts finished training batches into the loader's state (see ResumableLoader).

    Lightning runs checkpoint callbacks after all others, so a checkpoint saved at the end
    of a batch already counts that batch.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loader = trainer.train_dataloader
        if isinstance(loader, ResumableLoader):
            loader.consumed += 1


class RandomState(L.Callback):
    """Saves every rank's torch RNG state in checkpoints and restores it on resume.

    Lightning does not save RNG states, so dropout after a resume would differ from the
    uninterrupted run. States are restored at ``on_train_start``, just before the first
    step (the data loaders draw worker seeds from their own generators, so setting up data
    does not move the global stream). A run resumed on another number of processes keeps
    its freshly seeded streams.
    """

    def __init__(self):
        self._strategy = None
        self._pending: dict | None = None

    def setup(self, trainer, pl_module, stage):
        self._strategy = trainer.strategy

    def state_dict(self) -> dict:
        # Lightning assembles a checkpoint on every rank, so a collective is safe here.
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        return {
            "torch": self._gather(torch.get_rng_state()),
            "cuda": self._gather(torch.cuda.get_rng_state()) if cuda else None,
        }

    def _gather(self, state: torch.Tensor) -> list[torch.Tensor]:
        """One RNG state (uint8 vector) per rank, in rank order."""
        if self._strategy is None or self._strategy.world_size == 1:
            return [state.clone()]
        gathered = self._strategy.all_gather(state.to(self._strategy.root_device))  # (world, n)
        return [row.cpu().clone() for row in gathered]  # own storage per rank (see on_train_start)

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer, pl_module):
        state, self._pending = self._pending, None
        if state is None or len(state["torch"]) != trainer.world_size:
            return
        # set_rng_state reads the tensor's storage from its start: a row of a stacked
        # (world, n) tensor would hand rank 1 the wrong bytes (and crash), so copy it first.
        torch.set_rng_state(state["torch"][trainer.global_rank].clone())
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"][trainer.global_rank].clone())


class ParameterTable(L.Callback):
    """Prints trainable and frozen parameter counts per part when fitting starts."""

    def on_fit_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            print(format_parameter_table(parameter_table(pl_module.model)), flush=True)


class SampleTrace(L.Callback):
    """Appends {step, epoch, sample_ids, skipped, loss, lr} per training batch and rank.

    Args:
        folder: where ``rank-<global rank>.jsonl`` files go; a resumed run appends.
    """

    def __init__(self, folder: str):
        self.folder = folder

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if getattr(pl_module, "step_skipped", False):
            loss = None  # the step trained on nothing (see GroundingLitModule)
        line = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "sample_ids": list(batch["sample_ids"]) if batch is not None else [],
            "skipped": [s for s, _ in batch["skipped"]] if batch is not None else [],
            "loss": None if loss is None else float(loss),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
        }
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, f"rank-{trainer.global_rank}.jsonl"), "a") as f:
            f.write(json.dumps(line) + "\n")


def trace_from_env() -> list[L.Callback]:
    """[SampleTrace] when GPTGROUND_TRACE_SAMPLES names a folder, else []."""
    folder = os.environ.get(TRACE_ENV)
    return [SampleTrace(folder)] if folder else []
