"""Build the Lightning Trainer (strategy, precision, loggers, checkpoints) from a recipe."""

from __future__ import annotations

import os

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, FSDPStrategy, StrategyRegistry
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from gptground.config import RecipeConfig, TrainerConfig, WandbConfig
from gptground.config.schema import check_strategy
from gptground.training.callbacks import (
    LoaderPosition,
    ParameterTable,
    RandomState,
    trace_from_env,
)
from gptground.training.checkpoint_io import AtomicCheckpointIO
from gptground.training.deepspeed_checkpoint import deepspeed_strategy
from gptground.training.leftovers import CleanLeftovers
from gptground.training.fsdp_checkpoint import ShardedFSDPStrategy


def resolve_precision(cfg: TrainerConfig) -> str:
    """bf16-mixed on a GPU, full fp32 on CPU, unless the recipe names one."""
    if cfg.precision != "auto":
        return cfg.precision
    on_gpu = cfg.accelerator in ("gpu", "cuda") or (cfg.accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def strategy_checkpoints_layers(strategy: str, gradient_checkpointing: bool) -> bool:
    """Whether the strategy itself recomputes each decoder layer in backward.

    Under ``fsdp`` Lightning wraps each LlamaDecoderLayer in a checkpoint after sharding;
    the decoder's own (HF) checkpointing must then be off, or each layer runs three times.
    Every other strategy leaves it to the decoder (``model.decoder.gradient_checkpointing``).
    """
    return gradient_checkpointing and strategy == "fsdp"


def build_strategy(cfg: TrainerConfig, gradient_checkpointing: bool = False):
    """The Lightning strategy named by ``trainer.strategy``.

    ``ddp`` looks for unused parameters: a batch drawn from a mixture may hold no sample
    of some modality, and that modality's adapter then takes no part in the step (name
    ``ddp_find_unused_parameters_false`` when every batch uses every part). ``fsdp`` wraps
    each decoder layer (full shard, ``use_orig_params``: a unit may mix frozen and trainable
    parameters) and checkpoints it when ``gradient_checkpointing`` (the recipe's
    ``model.decoder.gradient_checkpointing``). Other names, ZeRO stage 3 included, go to
    Lightning as they are: nothing trainable shares a tensor with frozen weights (stage 1's
    new embedding rows are a parameter of their own), so any sharding keeps them apart.

    Raises:
        RecipeError: an FSDP or DeepSpeed strategy without a GPU accelerator; a DeepSpeed
            strategy without DeepSpeed installed.
    """
    check_strategy(cfg.strategy, cfg.accelerator, torch.cuda.is_available())
    if cfg.strategy == "ddp":
        return DDPStrategy(find_unused_parameters=True)
    if cfg.strategy == "fsdp":
        checkpointing = strategy_checkpoints_layers(cfg.strategy, gradient_checkpointing)
        return ShardedFSDPStrategy(  # sharded, trained-state-only checkpoints
            auto_wrap_policy={LlamaDecoderLayer},
            activation_checkpointing_policy={LlamaDecoderLayer} if checkpointing else None,
            checkpoint_io=AtomicCheckpointIO(),
        )
    if cfg.strategy.startswith("deepspeed") and cfg.strategy in StrategyRegistry:
        return deepspeed_strategy(cfg.strategy)  # atomic folder checkpoints
    return cfg.strategy


def wandb_mode(cfg: WandbConfig) -> str:
    """"offline" without an API key or when WANDB_MODE says so; else what the recipe says."""
    if cfg.mode != "auto":
        return cfg.mode
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return "offline"
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def build_loggers(recipe: RecipeConfig, resolved: dict) -> list:
    """CSV metrics in the run folder always (first, so it names the run folder); W&B if enabled.

    The W&B files go to ``<run folder>/wandb`` (``offline-run-*`` when offline).
    """
    csv = CSVLogger(save_dir=recipe.run.output_dir, name=recipe.run.name)
    loggers = [csv]
    w = recipe.wandb
    if w.enabled:
        loggers.append(
            WandbLogger(
                project=w.project,
                name=w.name or recipe.run.name,
                group=w.group,
                tags=list(w.tags),
                save_dir=csv.log_dir,
                offline=wandb_mode(w) == "offline",
                config=resolved,
            )
        )
    return loggers


def _checkpointing(recipe: RecipeConfig) -> ModelCheckpoint:
    """last.ckpt for resuming (+ the best by ``monitor`` when there is validation data).

    No dirpath: Lightning puts checkpoints in ``<run folder>/checkpoints`` and broadcasts
    rank 0's choice, so every rank agrees on the folder. Without a monitored metric there
    is no best checkpoint to keep: the "top 1" would be a second copy of last.ckpt (it is
    kept only when last.ckpt is off).
    """
    ckpt = recipe.trainer.checkpoint
    monitor = ckpt.monitor if recipe.data.val_sources else None
    return ModelCheckpoint(
        save_last=ckpt.save_last,
        monitor=monitor,
        mode=ckpt.mode,
        save_top_k=1 if monitor or not ckpt.save_last else 0,
        every_n_train_steps=ckpt.every_n_train_steps,
    )


def _checkpoint_plugins(strategy) -> list:
    """Atomic writes, except where the strategy brings its own checkpoint IO (FSDP, DeepSpeed)."""
    if isinstance(strategy, (FSDPStrategy, DeepSpeedStrategy)) or str(strategy).startswith("deepspeed"):
        return []
    return [AtomicCheckpointIO()]


def build_trainer(recipe: RecipeConfig, loggers: list, callbacks=()) -> L.Trainer:
    """The Lightning Trainer of a recipe; ``callbacks`` are added to the built-in ones.

    Built-in callbacks: CleanLeftovers (temporary files of killed saves of this run),
    LoaderPosition and RandomState (exact resume), ParameterTable, the checkpointing, and
    SampleTrace when ``GPTGROUND_TRACE_SAMPLES`` is set.
    """
    t = recipe.trainer
    strategy = build_strategy(t, recipe.model.decoder.gradient_checkpointing)
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=resolve_precision(t),
        max_steps=t.max_steps,
        max_epochs=t.max_epochs if t.max_steps == -1 else -1,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        val_check_interval=t.val_check_interval,
        limit_val_batches=t.limit_val_batches if recipe.data.val_sources else 0,
        log_every_n_steps=t.log_every_n_steps,
        logger=loggers,
        callbacks=[CleanLeftovers(os.path.join(recipe.run.output_dir, recipe.run.name)),
                   LoaderPosition(), RandomState(), ParameterTable(), *trace_from_env(), *callbacks,
                   _checkpointing(recipe)],
        plugins=_checkpoint_plugins(strategy),
        enable_progress_bar=t.enable_progress_bar,
        use_distributed_sampler=False,  # the MixtureSampler shards by rank itself
        default_root_dir=recipe.run.output_dir,
        num_sanity_val_steps=0,
    )
