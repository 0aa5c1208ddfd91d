"""Train one stage from a recipe: build, fit, save the model folder."""

from __future__ import annotations

import dataclasses
import os

import lightning as L
from omegaconf import OmegaConf

from gptground.config import RecipeConfig, recipe_to_yaml
from gptground.model.build import build_model
from gptground.model.folder import save_model_folder
from gptground.model.trainable import apply_trainable
from gptground.training.datamodule import GroundingDataModule
from gptground.training.module import GroundingLitModule
from gptground.training.trainer import build_loggers, build_trainer

MODEL_DIR = "model"  # the trained model folder inside a run folder


def _check_writable(path: str) -> None:
    """Fail before any model is built if the run folder cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise PermissionError(f"run folder {path!r} is not writable (`run.output_dir`): {e}") from e


def _resume_path(recipe: RecipeConfig, run_dir: str) -> str | None:
    r = recipe.trainer.resume_from
    if r == "last":
        return os.path.join(run_dir, "checkpoints", "last.ckpt")
    return r


def train(recipe: RecipeConfig) -> str:
    """Fit one stage; returns the run folder (holding ``model/``, metrics, checkpoints)."""
    _check_writable(recipe.run.output_dir)
    L.seed_everything(recipe.run.seed, workers=True)
    resolved = OmegaConf.to_container(OmegaConf.create(dataclasses.asdict(recipe)))
    loggers = build_loggers(recipe, resolved)
    run_dir = loggers[0].log_dir
    _check_writable(run_dir)
    with open(os.path.join(run_dir, "recipe.yaml"), "w") as f:
        f.write(recipe_to_yaml(recipe))
    model, tokenizer = build_model(recipe.model)
    apply_trainable(model, recipe.model.trainable)
    trainer = build_trainer(recipe, loggers, run_dir)
    data = GroundingDataModule(recipe, tokenizer, model.modalities)
    trainer.fit(GroundingLitModule(model, recipe), datamodule=data, ckpt_path=_resume_path(recipe, run_dir))
    if trainer.is_global_zero:
        save_model_folder(model, tokenizer, recipe.model, os.path.join(run_dir, MODEL_DIR))
    return run_dir
