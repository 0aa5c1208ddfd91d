"""``model.decoder.gradient_checkpointing`` is honoured under every strategy and off when false.

One mechanism recomputes each decoder layer: the decoder's own (HF, non-reentrant) under
ddp and DeepSpeed, Lightning's activation checkpointing under fsdp. A layer's forward runs
twice in a training step (forward, then recompute in backward) when on, once when off.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util

import pytest
from lightning.fabric.strategies.fsdp import _setup_activation_checkpointing
from strategy_runs import RECIPE, TINY, _batch

from gptground.config import load_recipe
from gptground.model.build import build_model
from gptground.model.trainable import apply_trainable
from gptground.training.module import GroundingLitModule
from gptground.training import trainer as trainer_module
from gptground.training.trainer import build_strategy

STRATEGIES = ["ddp", "fsdp", "deepspeed_stage_2", "deepspeed_stage_3"]


@pytest.fixture(autouse=True)
def _deepspeed_importable(monkeypatch):
    """The DeepSpeed strategies are only named here: a spec suffices for the recipe check, and
    the strategy object (which needs DeepSpeed itself) stays its registry name."""
    find_spec = importlib.util.find_spec
    spec = importlib.machinery.ModuleSpec("deepspeed", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "deepspeed" else find_spec(name, *a))
    monkeypatch.setattr(trainer_module, "deepspeed_strategy", lambda name: name)


def _prepared(strategy: str, enabled: bool):
    """(model as the strategy will run it, the strategy) for a tiny stage-1 recipe."""
    recipe = load_recipe(str(RECIPE), [*TINY, f"trainer.strategy={strategy}", "trainer.accelerator=gpu",
                                       f"model.decoder.gradient_checkpointing={enabled}"])
    model, _ = build_model(recipe.model)
    apply_trainable(model, recipe.model.trainable)
    GroundingLitModule(model, recipe).configure_model()  # what Lightning calls before wrapping
    built = build_strategy(recipe.trainer, recipe.model.decoder.gradient_checkpointing)
    if strategy == "fsdp":  # the checkpoint wrappers Lightning adds after sharding
        _setup_activation_checkpointing(model, built._activation_checkpointing_kwargs)
    return model, built


def _layer_forwards_in_one_step(model) -> int:
    """Forward runs of layer 0's attention in one step (the recompute in backward stops
    early, once it has every saved tensor: the layer's end does not run again)."""
    calls = []
    model.decoder.model.layers[0].self_attn.register_forward_hook(lambda *_: calls.append(1))
    model.train()
    model(**_batch(model, rank=0, step=0)).loss.backward()
    return len(calls)


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_layer_is_recomputed_once_when_on_and_never_when_off(strategy, enabled):
    model, built = _prepared(strategy, enabled)
    own = all(layer.gradient_checkpointing for layer in model.decoder.model.layers)
    by_strategy = bool(getattr(built, "_activation_checkpointing_kwargs", None))
    assert (own, by_strategy) == ((enabled and strategy != "fsdp"), (enabled and strategy == "fsdp"))
    assert _layer_forwards_in_one_step(model) == (2 if enabled else 1)
