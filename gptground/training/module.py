"""The LightningModule: next-token loss over a GroundingModel, with declared trainability."""

from __future__ import annotations

import time
from collections import Counter

import lightning as L
import torch

from gptground.config import RecipeConfig
from gptground.model.grounding_model import GroundingModel
from gptground.model.trainable import param_groups
from gptground.training.schedule import build_scheduler


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; names the step and the samples of the batch."""


class GroundingLitModule(L.LightningModule):
    """Trains ``model`` as the recipe says. Logs loss, lr, tokens/s and media per modality."""

    def __init__(self, model: GroundingModel, recipe: RecipeConfig):
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.skipped_nonfinite = 0
        self.media_seen: Counter[str] = Counter()
        self._step_started = time.perf_counter()

    def forward(self, batch):
        return self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            media=batch["media"],
            media_index=batch["media_index"],
            labels=batch["labels"],
            sample_ids=batch["sample_ids"],
        )

    def training_step(self, batch, batch_idx):
        loss = self(batch).loss
        if not torch.isfinite(loss):
            return self._non_finite(loss, batch)
        self._log_step(loss, batch)
        return loss

    def _non_finite(self, loss, batch):
        if self.recipe.trainer.nan_policy == "stop":
            raise NonFiniteLossError(
                f"loss is {loss.item()} at global step {self.global_step}; "
                f"samples in the batch: {batch['sample_ids']}"
            )
        # Returning None makes Lightning skip backward and the optimizer step for this batch.
        self.skipped_nonfinite += 1
        self.log("train/skipped_nonfinite", float(self.skipped_nonfinite))
        return None

    def _log_step(self, loss, batch) -> None:
        now = time.perf_counter()
        tokens = int(batch["attention_mask"].sum())
        elapsed, self._step_started = now - self._step_started, now
        for name, rows in batch["media_index"].items():
            self.media_seen[name] += len(rows)
        bs = len(batch["sample_ids"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/tokens_per_s", tokens / max(elapsed, 1e-9), batch_size=bs)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], prog_bar=True, batch_size=bs)
        self.log("train/skipped_samples", float(batch.get("skipped", 0)), reduce_fx="sum", batch_size=bs)
        for name, count in self.media_seen.items():
            self.log(f"train/samples_{name}", float(count), batch_size=bs)

    def validation_step(self, batch, batch_idx):
        loss = self(batch).loss
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["sample_ids"]))
        return loss

    def configure_optimizers(self):
        cfg = self.recipe.optim
        groups = param_groups(self.model, cfg.weight_decay)
        if not any(g["params"] for g in groups):
            raise ValueError("nothing to train: every part is frozen (see `model.trainable`)")
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = build_scheduler(optimizer, total, cfg)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
