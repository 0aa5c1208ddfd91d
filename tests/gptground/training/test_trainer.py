"""Trainer construction from a recipe: strategy, precision, W&B mode, callbacks."""

from __future__ import annotations

import pytest
from lightning.pytorch.strategies import DDPStrategy

from gptground.config import RecipeError, TrainerConfig, WandbConfig
from gptground.training.callbacks import SampleTrace, trace_from_env
from gptground.training.trainer import build_strategy, resolve_precision, wandb_mode


def test_ddp_looks_for_unused_parameters():
    """A batch without a video leaves the video adapter out of the step."""
    strategy = build_strategy(TrainerConfig(strategy="ddp"))
    assert isinstance(strategy, DDPStrategy)
    assert strategy._ddp_kwargs["find_unused_parameters"] is True
    assert build_strategy(TrainerConfig(strategy="ddp_find_unused_parameters_false")) == (
        "ddp_find_unused_parameters_false"
    )


def test_zero_stage_3_is_refused_before_training():
    with pytest.raises(RecipeError, match="deepspeed_stage_3.*use `fsdp`"):
        build_strategy(TrainerConfig(strategy="deepspeed_stage_3_offload"))


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
