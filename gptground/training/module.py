"""The LightningModule: next-token loss over a GroundingModel, with declared trainability.

Every decision that changes what a step does (skip it, stop the run) is taken on the
numbers of all ranks together: a rank that skipped or stopped alone would leave the others
waiting in a collective. Counters (skipped samples, skipped batches, media items per
modality) are sums over ranks, saved in checkpoints and restored on resume.
"""

from __future__ import annotations

import logging
import time

import lightning as L
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

from gptground.config import RecipeConfig
from gptground.model.grounding_model import GroundingModel
from gptground.model.decoder import set_gradient_checkpointing
from gptground.model.trainable import param_groups
from gptground.training.frozen_fingerprint import check_frozen, frozen_record
from gptground.training.nonfinite import NonFiniteGuard, SkipLimits
from gptground.training.schedule import build_scheduler
from gptground.training.trained_state import trained_state_names
from gptground.training.trainer import strategy_checkpoints_layers

log = logging.getLogger(__name__)

COUNTS_KEY = "gptground_counts"  # where the counters live in a Lightning checkpoint
NONFINITE_KEY = "gptground_nonfinite"  # the non-finite skip window (see nonfinite.NonFiniteGuard)
# What the checkpoint's weights are: the trained names, a fingerprint of the frozen rest
# and the recipe keys it came from (see frozen_fingerprint.frozen_record).
FROZEN_KEY = "gptground_frozen"
MODEL_PREFIX = "model."  # the GroundingModel's keys inside this module's state_dict


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN or infinite; names the step and the samples."""


class GroundingLitModule(L.LightningModule):
    """Trains ``model`` as the recipe says.

    Logs ``train/loss``, ``train/lr``, ``train/tokens_per_s`` and the running counts
    ``train/skipped_samples`` (samples that failed to load), ``train/skipped_batches``
    (batches skipped for a non-finite loss or for holding no loadable sample) and
    ``train/samples_<modality>`` (media items trained on).

    Checkpoints hold only the state that trains (``trained_state_names``) and its optimizer
    state; the frozen weights are fingerprinted here, when the module is made (before any
    strategy wraps the model), and checked against the checkpoint's on resume.
    """

    def __init__(self, model: GroundingModel, recipe: RecipeConfig):
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.trained_names = trained_state_names(model)
        self.frozen = frozen_record(model, recipe.model, self.trained_names)
        # The checkpoint lacks the frozen keys by design: loading is not strict, and
        # on_load_checkpoint checks instead that it holds exactly what trains.
        self.strict_loading = False
        self._media_counts = {f"samples_{name}": name for name in sorted(model.modalities)}
        self.counts: dict[str, int] = dict.fromkeys(["skipped_samples", "skipped_batches", *self._media_counts], 0)
        self.step_skipped = False  # whether the last training batch was skipped
        self._real_batches = 0  # batches with a loss since the last optimizer step
        self._real_ids: list[str] = []  # their sample ids (this rank), for error messages
        t = recipe.trainer
        self.nonfinite = NonFiniteGuard(SkipLimits(t.nan_skip_max_consecutive, t.nan_skip_max_fraction, t.nan_skip_window))
        self._step_started = time.perf_counter()

    def forward(self, batch):
        return self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            media=batch["media"],
            media_index=batch["media_index"],
            labels=batch["labels"],
            sample_ids=batch["sample_ids"],
            encoded=batch.get("encoded", ()),
        )

    def training_step(self, batch, batch_idx):
        self._warn_skipped(batch["skipped"])
        loss = self(batch).loss if batch["sample_ids"] else None
        step = self._sum_over_ranks(self._step_counts(batch, loss))
        self.counts["skipped_samples"] += step["skipped_samples"]
        self.step_skipped = bool(step["empty"] or step["nonfinite"])
        if self.step_skipped:
            return self._skip_batch(loss, batch, step)
        self._real_batches += 1  # recorded in the guard once its gradients are checked
        self._real_ids.extend(batch["sample_ids"])
        for key in self._media_counts:
            self.counts[key] += step[key]
        self._log_step(loss, batch)
        return loss

    def _warn_skipped(self, skipped: list[tuple[str, str]]) -> None:
        for sample_id, reason in skipped:
            log.warning("rank %d skipped sample %s: %s", self.global_rank, sample_id, reason)

    def _step_counts(self, batch, loss) -> dict[str, int]:
        """This rank's numbers for the step; ``_sum_over_ranks`` adds the other ranks'."""
        counts = {
            "empty": int(loss is None),
            "nonfinite": int(_nonfinite(loss)),
            "skipped_samples": len(batch["skipped"]),
        }
        media_index = batch.get("media_index", {})  # absent in a batch with no sample
        for key, name in self._media_counts.items():
            counts[key] = len(media_index[name]) if name in media_index else 0
        return counts

    def _sum_over_ranks(self, counts: dict[str, int]) -> dict[str, int]:
        values = torch.tensor(list(counts.values()), dtype=torch.long, device=self.device)
        values = self.trainer.strategy.reduce(values, reduce_op="sum")  # one collective per step
        return dict(zip(counts, values.tolist()))

    def _skip_batch(self, loss, batch, step: dict[str, int]):
        if step["nonfinite"] and self.recipe.trainer.nan_policy == "stop":
            where = f"loss is {loss.item()}" if _nonfinite(loss) else "a non-finite loss on another rank"
            raise NonFiniteLossError(
                f"{where} at global step {self.global_step} (rank {self.global_rank}); "
                f"samples of this rank's batch: {batch['sample_ids']}. "
                "Set `trainer.nan_policy=skip` to skip such batches instead."
            )
        self.counts["skipped_batches"] += 1
        reason = "non-finite loss" if step["nonfinite"] else "no sample loaded"
        log.warning("skipping the batch of global step %d (%s); samples here: %s",
                    self.global_step, reason, batch["sample_ids"])
        if step["nonfinite"]:
            self.nonfinite.record(True, self.global_step, batch["sample_ids"])
        self._log_counts(batch_size=max(1, len(batch["sample_ids"])))
        return self._zero_loss()

    def _zero_loss(self) -> torch.Tensor:
        """0 with a zero gradient for every trainable parameter.

        A skipped batch still runs backward on every rank, so that the ranks' gradient
        reductions stay in step (returning None would leave DDP waiting); the update itself
        is dropped in ``on_before_optimizer_step``.
        """
        return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip by the global gradient norm (``trainer.gradient_clip_val``) where Lightning cannot.

        Lightning refuses norm clipping under FSDP (``torch.nn.utils.clip_grad_norm_`` would
        see only this rank's shards) and with a fused AdamW under bf16-mixed (a fused optimizer
        unscales fp16 gradients itself, so Lightning refuses it for every mixed precision,
        though bf16 has no scaler): both are the GPU defaults. Here FSDP's root module computes
        the norm over all shards, and without a gradient scaler the gradients are clipped as
        they are. DeepSpeed clips inside its engine, and fp16 with a scaler keeps Lightning's
        path (its gradients are still scaled here).
        """
        strategy = self.trainer.strategy
        scaler = getattr(strategy.precision_plugin, "scaler", None)
        if (not gradient_clip_val or gradient_clip_algorithm not in (None, "norm")
                or isinstance(strategy, DeepSpeedStrategy) or scaler is not None):
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        elif isinstance(strategy, FSDPStrategy):
            strategy.model.clip_grad_norm_(gradient_clip_val)  # a collective over every rank's shards
        else:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def on_before_optimizer_step(self, optimizer) -> None:
        """Drop the update when no batch trained, or when a gradient is NaN/inf.

        Without gradients AdamW changes neither the weights nor its moments (zero gradients
        would still move both). A non-finite gradient (a finite loss can overflow in
        backward) stops the run or skips the step, as ``trainer.nan_policy`` says; the
        batches of the step then count as skipped. Gradients held by the strategy instead
        of ``p.grad`` (DeepSpeed) are left to it.
        """
        real, ids = self._real_batches, self._real_ids
        self._real_batches, self._real_ids = 0, []
        if real == 0:
            optimizer.zero_grad(set_to_none=True)
            return
        bad = self._sum_over_ranks({"grads": int(_nonfinite_grads(optimizer))})["grads"]
        if bad and self.recipe.trainer.nan_policy == "stop":
            raise NonFiniteLossError(
                f"a non-finite gradient at global step {self.global_step} (on {bad} rank(s)); samples of "
                f"this rank's batches: {ids}. Set `trainer.nan_policy=skip` to skip such steps instead."
            )
        if bad:
            optimizer.zero_grad(set_to_none=True)
            self.counts["skipped_batches"] += real
            log.warning("skipping the update of global step %d (non-finite gradient); samples here: %s",
                        self.global_step, ids)
        for _ in range(real):
            self.nonfinite.record(bool(bad), self.global_step, ids)

    def _log_step(self, loss, batch) -> None:
        now = time.perf_counter()
        tokens = int(batch["attention_mask"].sum())
        elapsed, self._step_started = now - self._step_started, now
        bs = len(batch["sample_ids"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/tokens_per_s", tokens / max(elapsed, 1e-9), batch_size=bs)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], prog_bar=True, batch_size=bs)
        self._log_counts(bs)

    def _log_counts(self, batch_size: int) -> None:
        for name, value in self.counts.items():
            self.log(f"train/{name}", float(value), batch_size=batch_size)

    def validation_step(self, batch, batch_idx):
        self._warn_skipped(batch["skipped"])
        if not batch["sample_ids"]:
            return None
        loss = self(batch).loss
        # on_epoch only: the ranks' sums are reduced once at the end of validation.
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["sample_ids"]))
        return loss

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[COUNTS_KEY] = dict(self.counts)
        checkpoint[NONFINITE_KEY] = self.nonfinite.state_dict()
        checkpoint[FROZEN_KEY] = self.frozen
        keep = {MODEL_PREFIX + name for name in self.trained_names}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint of other frozen weights, or one that lacks trained state.

        Runs before Lightning loads the state dict (the FSDP and DeepSpeed strategies load
        theirs earlier, but nothing trains before this check).
        """
        where = str(self.trainer.ckpt_path) if self._trainer is not None else "the checkpoint"
        if FROZEN_KEY in checkpoint:
            check_frozen(checkpoint[FROZEN_KEY], self.frozen, where)
        if "state_dict" in checkpoint:
            self._check_state_keys(checkpoint["state_dict"], full=FROZEN_KEY not in checkpoint)
        self.counts.update(checkpoint.get(COUNTS_KEY, {}))
        if NONFINITE_KEY in checkpoint:
            self.nonfinite.load_state_dict(checkpoint[NONFINITE_KEY])

    def configure_model(self) -> None:
        """Runs before the strategy wraps the model: where the strategy checkpoints each
        decoder layer itself (FSDP), the decoder's own checkpointing is turned off."""
        if strategy_checkpoints_layers(self.recipe.trainer.strategy, self.recipe.model.decoder.gradient_checkpointing):
            set_gradient_checkpointing(self.model.decoder, False)

    def _check_state_keys(self, state: dict, full: bool) -> None:
        """The checkpoint holds every trained key (every key: a full one of older versions)."""
        expected = self.state_dict().keys() if full else {MODEL_PREFIX + n for n in self.trained_names}
        missing = sorted(set(expected) - state.keys())
        if missing:
            raise KeyError(f"the checkpoint lacks {len(missing)} tensors of the model, e.g. {missing[:5]}")

    def configure_optimizers(self):
        cfg = self.recipe.optim
        groups = param_groups(self.model, cfg.weight_decay)
        if not any(g["params"] for g in groups):
            raise ValueError("nothing to train: every part is frozen (see `model.trainable`)")
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=cfg.fused)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = build_scheduler(optimizer, total, cfg)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _nonfinite_grads(optimizer) -> bool:
    """True when any gradient the optimizer would apply holds a NaN, inf or -inf."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    # A sharded gradient (FSDP2's DTensor) is checked on this rank's shard; the caller sums ranks.
    flags = [torch.isfinite(g.to_local() if hasattr(g, "to_local") else g).all() for g in grads]
    return bool(flags) and not bool(torch.stack(flags).all())  # one device sync for all


def _nonfinite(loss) -> bool:
    """True when ``loss`` is a NaN or infinite tensor (None: no loss, not non-finite)."""
    return loss is not None and not bool(torch.isfinite(loss))
