"""Trainer construction from a recipe: strategy, precision, W&B mode, callbacks."""

from __future__ import annotations

import importlib.machinery
import importlib.util

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from training_fixtures import RECIPES

from gptground.cli import main
from gptground.config import RecipeError, TrainerConfig, WandbConfig
from gptground.training.callbacks import SampleTrace, trace_from_env
from gptground.training import trainer as trainer_module
from gptground.training.trainer import build_strategy, resolve_precision, wandb_mode


def test_ddp_looks_for_unused_parameters():
    """A batch without a video leaves the video adapter out of the step."""
    strategy = build_strategy(TrainerConfig(strategy="ddp"))
    assert isinstance(strategy, DDPStrategy)
    assert strategy._ddp_kwargs["find_unused_parameters"] is True
    assert build_strategy(TrainerConfig(strategy="ddp_find_unused_parameters_false")) == (
        "ddp_find_unused_parameters_false"
    )


def _deepspeed_installed(monkeypatch, installed: bool) -> None:
    """Make ``importlib.util.find_spec("deepspeed")`` say what the test needs."""
    find_spec = importlib.util.find_spec
    spec = importlib.machinery.ModuleSpec("deepspeed", None) if installed else None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "deepspeed" else find_spec(name, *a))


@pytest.mark.parametrize("strategy", ["deepspeed_stage_3", "deepspeed_stage_3_offload", "deepspeed_stage_2"])
def test_zero_stage_3_and_2_are_allowed_with_atomic_folder_checkpoints(monkeypatch, strategy):
    _deepspeed_installed(monkeypatch, True)
    monkeypatch.setattr(trainer_module, "deepspeed_strategy", lambda name: ("atomic", name))
    assert build_strategy(TrainerConfig(strategy=strategy, accelerator="gpu")) == ("atomic", strategy)


@pytest.mark.parametrize("strategy", ["fsdp", "fsdp_cpu_offload", "deepspeed_stage_2", "deepspeed_stage_3"])
def test_gpu_only_strategy_on_cpu_is_a_recipe_error_naming_both_keys(monkeypatch, strategy):
    _deepspeed_installed(monkeypatch, True)
    with pytest.raises(RecipeError, match=rf"`trainer.strategy={strategy}`.*`trainer.accelerator=cpu`"):
        TrainerConfig(strategy=strategy, accelerator="cpu")  # the recipe's own validation
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RecipeError, match=r"`trainer.accelerator=auto` and no GPU is visible"):
        build_strategy(TrainerConfig(strategy=strategy, accelerator="auto"))


def test_deepspeed_without_deepspeed_names_the_key_and_the_install_command(monkeypatch):
    _deepspeed_installed(monkeypatch, False)
    with pytest.raises(RecipeError, match=r"`trainer.strategy=deepspeed_stage_2`.*pip install 'gptground\[deepspeed\]'"):
        TrainerConfig(strategy="deepspeed_stage_2", accelerator="gpu")


@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        (["trainer.strategy=fsdp", "trainer.accelerator=cpu"], ["trainer.strategy=fsdp", "trainer.accelerator=cpu"]),
        (["trainer.strategy=deepspeed_stage_3", "trainer.accelerator=gpu"], ["trainer.strategy", "pip install"]),
    ],
)
def test_cli_prints_strategy_errors_in_one_line(monkeypatch, capsys, overrides, keys):
    _deepspeed_installed(monkeypatch, False)
    assert main(["run", str(RECIPES / "stage1.yaml"), "data.dir=unused", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert all(k in err for k in keys)


def test_precision_auto_is_fp32_on_cpu():
    assert resolve_precision(TrainerConfig(accelerator="cpu")) == "32-true"
    assert resolve_precision(TrainerConfig(accelerator="gpu")) == "bf16-mixed"
    assert resolve_precision(TrainerConfig(accelerator="gpu", precision="16-mixed")) == "16-mixed"


@pytest.mark.parametrize(
    ("mode", "env", "expected"),
    [
        ("auto", {}, "offline"),
        ("auto", {"WANDB_API_KEY": "k"}, "online"),
        ("auto", {"WANDB_API_KEY": "k", "WANDB_MODE": "offline"}, "offline"),
        ("online", {}, "online"),
    ],
)
def test_wandb_mode(monkeypatch, mode, env, expected):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert wandb_mode(WandbConfig(mode=mode)) == expected


def test_sample_trace_only_when_the_environment_names_a_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("GPTGROUND_TRACE_SAMPLES", raising=False)
    assert trace_from_env() == []
    monkeypatch.setenv("GPTGROUND_TRACE_SAMPLES", str(tmp_path))
    (trace,) = trace_from_env()
    assert isinstance(trace, SampleTrace) and trace.folder == str(tmp_path)
