"""Typed, validated recipes (OmegaConf YAML over dataclasses)."""

from gptground.config.errors import RecipeError
from gptground.config.load import load_recipe, load_recipe_dict, recipe_from_dict, recipe_to_yaml
from gptground.config.schema import (
    CheckpointConfig,
    DataConfig,
    DecoderConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    RecipeConfig,
    RunConfig,
    SourceConfig,
    TinyDecoderConfig,
    TrainableConfig,
    TrainerConfig,
    WandbConfig,
)

__all__ = [
    "CheckpointConfig",
    "DataConfig",
    "DecoderConfig",
    "LoraConfig",
    "ModelConfig",
    "OptimConfig",
    "RecipeConfig",
    "RecipeError",
    "RunConfig",
    "SourceConfig",
    "TinyDecoderConfig",
    "TrainableConfig",
    "TrainerConfig",
    "WandbConfig",
    "load_recipe",
    "load_recipe_dict",
    "recipe_from_dict",
    "recipe_to_yaml",
]
