"""Build the Lightning Trainer (strategy, precision, loggers, checkpoints) from a recipe."""

from __future__ import annotations

import os

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.strategies import FSDPStrategy
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from gptground.config import RecipeConfig, TrainerConfig, WandbConfig
from gptground.training.callbacks import LoaderPosition, ParameterTable
from gptground.training.checkpoint_io import AtomicCheckpointIO


def resolve_precision(cfg: TrainerConfig) -> str:
    """bf16-mixed on a GPU, full fp32 on CPU, unless the recipe names one."""
    if cfg.precision != "auto":
        return cfg.precision
    on_gpu = cfg.accelerator in ("gpu", "cuda") or (cfg.accelerator == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_gpu else "32-true"


def build_strategy(cfg: TrainerConfig):
    """FSDP wraps and checkpoints each decoder layer; other names go to Lightning as-is."""
    if cfg.strategy == "fsdp":
        return FSDPStrategy(
            auto_wrap_policy={LlamaDecoderLayer},
            activation_checkpointing_policy={LlamaDecoderLayer},
            checkpoint_io=AtomicCheckpointIO(),
        )
    if cfg.strategy.startswith("deepspeed"):
        try:
            import deepspeed  # noqa: F401
        except ImportError as e:
            raise ImportError(
                f"`trainer.strategy={cfg.strategy}` needs DeepSpeed: pip install 'gptground[deepspeed]'"
            ) from e
    return cfg.strategy


def wandb_mode(cfg: WandbConfig) -> str:
    """"offline" without an API key or when WANDB_MODE says so; else what the recipe says."""
    if cfg.mode != "auto":
        return cfg.mode
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return "offline"
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def build_loggers(recipe: RecipeConfig, resolved: dict):
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


def build_trainer(recipe: RecipeConfig, loggers, run_dir: str) -> L.Trainer:
    t = recipe.trainer
    ckpt = t.checkpoint
    checkpoints = ModelCheckpoint(
        dirpath=os.path.join(run_dir, "checkpoints"),
        save_last=ckpt.save_last,
        monitor=ckpt.monitor if recipe.data.val_sources else None,
        mode=ckpt.mode,
        save_top_k=1,
        every_n_train_steps=ckpt.every_n_train_steps,
    )
    strategy = build_strategy(t)
    plugins = [] if isinstance(strategy, FSDPStrategy) or str(strategy).startswith("deepspeed") else [AtomicCheckpointIO()]
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
        callbacks=[LoaderPosition(), ParameterTable(), checkpoints],
        plugins=plugins,
        enable_progress_bar=t.enable_progress_bar,
        use_distributed_sampler=False,  # the MixtureSampler shards by rank itself
        default_root_dir=run_dir,
        num_sanity_val_steps=0,
    )
