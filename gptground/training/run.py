"""Train one stage from a recipe: build, fit, save the model folder.

Every process of a distributed run executes ``train``; only global rank 0 writes the run
folder (recipe, metrics, checkpoints, model). See ``run_folder`` for the folder layout and
what ``trainer.resume_from: last`` picks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import lightning as L
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from omegaconf import OmegaConf

from gptground.config import RecipeConfig, recipe_to_yaml
from gptground.config.init_from import resolve_init_from
from gptground.model.build import build_model, weights_dtype
from gptground.model.folder import save_model_folder
from gptground.model.lora import merged_state_dict
from gptground.model.trainable import apply_trainable
from gptground.training.datamodule import GroundingDataModule
from gptground.training.module import GroundingLitModule
from gptground.training.run_folder import check_writable, resolve_resume
from gptground.training.trainer import build_loggers, build_trainer

MODEL_DIR = "model"  # the trained model folder inside a run folder
RECIPE_FILE = "recipe.yaml"  # the resolved recipe inside a run folder


def train(recipe: RecipeConfig, callbacks=()) -> str:
    """Fit one stage; returns the run folder (holding ``model/``, metrics, checkpoints).

    Args:
        recipe: the validated recipe.
        callbacks: extra Lightning callbacks, run before the checkpointing.

    Raises:
        PermissionError: the run folder cannot be written (before anything is built).
        FileNotFoundError: ``trainer.resume_from`` names no checkpoint.
        RecipeError: ``model.init_from`` names a run with no finished model folder.
    """
    check_writable(recipe.run.output_dir)
    # Resolved before the logger creates this run's new version folder.
    ckpt_path = resolve_resume(recipe.trainer.resume_from, recipe.run.output_dir, recipe.run.name)
    # A run name or "latest" becomes the folder it means; the saved recipe records that folder.
    recipe.model.init_from = resolve_init_from(recipe.model.init_from, recipe.run.output_dir)
    L.seed_everything(recipe.run.seed, workers=True)
    # The model first: missing weights stop the run at once, before any device or data setup.
    # Weights are built in the dtype the precision trains them in (bf16 for "bf16-true").
    model, tokenizer = build_model(recipe.model, weights_dtype(recipe.trainer.precision))
    apply_trainable(model, recipe.model.trainable)
    loggers = build_loggers(recipe, OmegaConf.to_container(OmegaConf.create(dataclasses.asdict(recipe))))
    trainer = build_trainer(recipe, loggers, callbacks)
    if trainer.is_global_zero:
        _start_run_folder(loggers[0], recipe)
    data = GroundingDataModule(recipe, tokenizer, model.modalities)
    try:
        # weights_only: a checkpoint is data, never code (our CheckpointIO enforces it too).
        trainer.fit(GroundingLitModule(model, recipe), datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    finally:
        _finish_wandb(trainer, loggers)
    run_dir = trainer.log_dir  # rank 0's folder, broadcast to every rank
    with _whole_weights(trainer, model) as state:
        if trainer.is_global_zero:
            save_model_folder(
                model, tokenizer, recipe.model, os.path.join(run_dir, MODEL_DIR),
                template=recipe.data.template, grounding_format=recipe.data.grounding_format, state=state,
            )
    return run_dir


@contextlib.contextmanager
def _whole_weights(trainer: L.Trainer, model):
    """Whole trained weights for the model folder, while inside; yields what rank 0 saves.

    Every rank enters (gathering is a collective). Under FSDP each rank holds a shard of
    every wrapped layer: the full state dict is gathered to rank 0 and written as it is,
    LoRA and new token rows merged, without building a second model (yields that state;
    None on other ranks). Under DeepSpeed ZeRO-3 the parameters are partitioned: they are
    gathered in place while inside (yields None: write from the live model). Other
    strategies keep whole parameters (None).
    """
    if isinstance(trainer.strategy, FSDPStrategy):
        state = trainer.strategy.full_module_state_dict()  # {} on ranks other than 0
        yield merged_state_dict(model, {k.removeprefix("model."): v for k, v in state.items()}) \
            if trainer.is_global_zero else None
    elif isinstance(trainer.strategy, DeepSpeedStrategy) and trainer.strategy.zero_stage_3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            yield None
    else:
        yield None


def _start_run_folder(csv: CSVLogger, recipe: RecipeConfig) -> None:
    """Create the new version folder, check it is writable, and save the resolved recipe."""
    _ = csv.experiment  # creates the folder while it is still empty (else Lightning warns)
    check_writable(csv.log_dir)
    with open(os.path.join(csv.log_dir, RECIPE_FILE), "w") as f:
        f.write(recipe_to_yaml(recipe))


def _finish_wandb(trainer: L.Trainer, loggers: list) -> None:
    """Close the W&B run, so that the next stage in this process starts its own."""
    if not trainer.is_global_zero:
        return
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()
