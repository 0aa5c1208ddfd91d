"""Load recipes: YAML files (that may extend one another) + ``key=value`` overrides.

Each layer is checked against the typed schema on its own, so an error names the file
(or "command line") that introduced the bad key, with its dotted path.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import fsspec
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gptground.config.errors import RecipeError
from gptground.config.schema import RecipeConfig, modality_preprocess
from modalities import get_modality_class
from modalities.preprocess import DEFAULT

EXTENDS_KEY = "extends"  # a recipe's base file, relative to the recipe's own folder
MODALITIES_KEY = "model.modalities"


def _read_yaml(path: str) -> DictConfig:
    try:
        with fsspec.open(path, "r") as f:
            cfg = OmegaConf.create(f.read())
    except FileNotFoundError as e:
        raise RecipeError(f"recipe file not found: {path}") from e
    except OmegaConfBaseException as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from e
    except Exception as e:  # yaml.YAMLError has no common base with OmegaConf's errors
        raise RecipeError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(cfg, DictConfig):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys, got a list")
    return cfg


def _layers(path: str, seen: tuple[str, ...] = ()) -> list[tuple[str, DictConfig]]:
    """The chain of (file, config) from the root base to ``path``."""
    path = os.path.abspath(path) if "://" not in path else path
    if path in seen:
        raise RecipeError(f"{path}: `extends` forms a cycle: {' -> '.join(seen + (path,))}")
    cfg = _read_yaml(path)
    base = cfg.pop(EXTENDS_KEY, None)
    if base is None:
        return [(path, cfg)]
    base_path = str(Path(path).parent / str(base)) if "://" not in str(base) else str(base)
    return _layers(base_path, seen + (path,)) + [(path, cfg)]


def _check_layer(where: str, layer: DictConfig) -> None:
    """Merge one layer onto the bare schema: unknown keys and wrong types fail here."""
    schema = OmegaConf.structured(RecipeConfig)
    try:
        OmegaConf.merge(schema, layer)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise RecipeError(f"{where}: bad recipe key `{key}`: {_short(e)}") from e
    modalities = OmegaConf.select(layer, MODALITIES_KEY, default=None)
    for name, cfg in (modalities or {}).items():
        _check_modality(where, str(name), cfg)


def _check_modality(where: str, name: str, cfg: Any) -> None:
    key = f"{MODALITIES_KEY}.{name}"
    try:
        cls = get_modality_class(name)
    except KeyError as e:
        raise RecipeError(f"{where}: bad recipe key `{key}`: {e.args[0]}") from e
    try:
        OmegaConf.merge(OmegaConf.structured(cls.config_class), cfg or {})
    except OmegaConfBaseException as e:
        sub = getattr(e, "full_key", None) or "?"
        raise RecipeError(f"{where}: bad recipe key `{key}.{sub}`: {_short(e)}") from e


def _short(e: Exception) -> str:
    return str(e).splitlines()[0]


def _parse_overrides(overrides: list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"command line: override {item!r} is not of the form key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as e:
        raise RecipeError(f"command line: bad override: {_short(e)}") from e


def load_recipe_dict(path: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The merged, validated, resolved recipe as an OmegaConf DictConfig."""
    layers = _layers(str(path))
    if overrides:
        layers.append(("command line", _parse_overrides(list(overrides))))
    merged = OmegaConf.structured(RecipeConfig)
    for where, layer in layers:
        _check_layer(where, layer)
        merged = OmegaConf.merge(merged, layer)
    try:
        OmegaConf.resolve(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise RecipeError(f"{path}: cannot resolve `{key}`: {_short(e)}") from e
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise RecipeError(f"{path}: required recipe keys have no value: {missing}")
    return merged


def load_recipe(path: str, overrides: list[str] | tuple[str, ...] = ()) -> RecipeConfig:
    """Load, validate and type a recipe. Raises RecipeError naming the key and the file.

    Modality configs under ``model.modalities`` become their modality's config dataclass.
    """
    return recipe_from_dict(load_recipe_dict(path, overrides), str(path))


def recipe_from_dict(cfg: DictConfig | dict, where: str) -> RecipeConfig:
    """Type a recipe mapping (e.g. the model section saved in a model folder)."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    _check_layer(where, cfg)
    merged = OmegaConf.merge(OmegaConf.structured(RecipeConfig), cfg)
    try:
        recipe: RecipeConfig = OmegaConf.to_object(merged)
    except RecipeError as e:
        raise RecipeError(f"{where}: {e}") from e
    except OmegaConfBaseException as e:
        raise RecipeError(f"{where}: {_short(e)}") from e
    typed = {}
    for name, mcfg in recipe.model.modalities.items():
        cls = get_modality_class(name).config_class
        fields = dict(mcfg or {})
        try:
            # Each modality receives the model-wide input pipeline through its own config.
            fields["preprocess"] = modality_preprocess(name, fields.get("preprocess"), recipe.model.preprocess)
        except RecipeError as e:
            raise RecipeError(f"{where}: {e}") from e
        if not _has_field(cls, "preprocess"):  # a modality with one pipeline only
            if fields.pop("preprocess") != DEFAULT:
                raise RecipeError(
                    f"{where}: `model.preprocess={recipe.model.preprocess}`: modality {name!r} has only "
                    "the default input pipeline"
                )
        try:
            typed[name] = cls(**fields)
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{where}: bad recipe key `{MODALITIES_KEY}.{name}`: {e}") from e
    recipe.model.modalities = typed
    return recipe


def _has_field(cls: type, name: str) -> bool:
    return dataclasses.is_dataclass(cls) and any(f.name == name for f in dataclasses.fields(cls))


def recipe_to_yaml(recipe: RecipeConfig) -> str:
    """The resolved recipe as YAML (written into each run folder)."""
    return OmegaConf.to_yaml(OmegaConf.create(dataclasses.asdict(recipe)))
