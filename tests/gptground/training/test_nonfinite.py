"""Fault 3 of issue 17: NaN, inf and -inf alike, in the loss or a gradient; `nan_policy=skip`
gives up past its limits, naming the steps and samples; its counts survive a resume."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from training_fixtures import CrashAt, tiny_recipe

from gptground.config import RecipeError
from gptground.training.module import GroundingLitModule, NonFiniteLossError
from gptground.training.nonfinite import NonFiniteGuard, NonFiniteLimitError, SkipLimits
from gptground.training.run import train

VALUES = ["nan", "inf", "-inf"]


def _poison_loss(monkeypatch, steps: set[int], value: str) -> None:
    """The training loss of each global step in ``steps`` becomes loss * ``value``."""
    forward = GroundingLitModule.forward

    def poisoned(self, batch):
        out = forward(self, batch)
        if self.training and self.global_step in steps:
            out.loss = out.loss * float(value)
        return out

    monkeypatch.setattr(GroundingLitModule, "forward", poisoned)


class _PoisonGrad(L.Callback):
    """After backward of global step ``step``, one trainable gradient element becomes ``value``
    (the loss itself stays finite)."""

    def __init__(self, step: int, value: str):
        self.step, self.value = step, float(value)

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == self.step:
            grad = next(p.grad for p in pl_module.parameters() if p.grad is not None)
            grad.view(-1)[0] = self.value


class _UpdateWatch(L.Callback):
    """Per global step (after the batch), whether the batch changed any parameter."""

    def __init__(self):
        self.changed: dict[int, bool] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.changed[trainer.global_step] = any(
            not torch.equal(a, b) for a, b in zip(self._before, pl_module.parameters())
        )


def _last(run_dir: str, column: str) -> float:
    value = None
    with open(f"{run_dir}/metrics.csv") as f:
        for row in csv.DictReader(f):
            value = row.get(column) or value
    return float(value)


@pytest.mark.parametrize("value", VALUES)
def test_stop_policy_names_a_non_finite_loss(world, tmp_path, monkeypatch, value):
    _poison_loss(monkeypatch, {1}, value)
    with pytest.raises(NonFiniteLossError, match=rf"loss is {value} at global step 1 "):
        train(tiny_recipe(1, world, tmp_path, "trainer.max_steps=3"))


@pytest.mark.parametrize("value", VALUES)
def test_skip_policy_skips_and_counts_a_non_finite_loss(world, tmp_path, monkeypatch, value):
    _poison_loss(monkeypatch, {1}, value)
    watch = _UpdateWatch()
    run_dir = train(tiny_recipe(1, world, tmp_path, "trainer.max_steps=3", "trainer.nan_policy=skip"),
                    callbacks=[watch])
    assert watch.changed == {1: True, 2: False, 3: True}
    assert _last(run_dir, "train/skipped_batches") == 1.0


@pytest.mark.parametrize("value", VALUES)
def test_a_non_finite_gradient_is_skipped_or_stops(world, tmp_path, value):
    watch = _UpdateWatch()
    recipe = tiny_recipe(1, world, tmp_path / "skip", "trainer.max_steps=3", "trainer.nan_policy=skip")
    run_dir = train(recipe, callbacks=[_PoisonGrad(1, value), watch])
    assert watch.changed == {1: True, 2: False, 3: True}
    assert _last(run_dir, "train/skipped_batches") == 1.0
    assert all(torch.isfinite(p).all() for p in torch.load(f"{run_dir}/checkpoints/last.ckpt")["state_dict"].values())

    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient at global step 1 .*samples of this rank's batches: \['"):
        train(tiny_recipe(1, world, tmp_path / "stop", "trainer.max_steps=3"), callbacks=[_PoisonGrad(1, value)])


@pytest.mark.parametrize("value", VALUES)
def test_skip_gives_up_after_too_many_in_a_row(world, tmp_path, monkeypatch, value):
    _poison_loss(monkeypatch, {1, 2, 3, 4}, value)
    recipe = tiny_recipe(1, world, tmp_path, "trainer.max_steps=6", "trainer.nan_policy=skip",
                         "trainer.nan_skip_max_consecutive=2")
    with pytest.raises(NonFiniteLimitError, match=r"3 non-finite batches in a row .*nan_skip_max_consecutive=2") as e:
        train(recipe)
    message = str(e.value)
    assert "step 1: ['" in message and "step 2: ['" in message and "step 3: ['" in message
    assert "step 4" not in message  # stopped at the third


def test_skip_gives_up_past_the_fraction_of_the_window(world, tmp_path, monkeypatch):
    _poison_loss(monkeypatch, {0, 2, 3}, "nan")
    recipe = tiny_recipe(1, world, tmp_path, "trainer.max_steps=6", "trainer.nan_policy=skip",
                         "trainer.nan_skip_max_consecutive=10", "trainer.nan_skip_window=4",
                         "trainer.nan_skip_max_fraction=0.5")
    with pytest.raises(NonFiniteLimitError, match=r"3 of the last 4 batches non-finite .*allows 2\)") as e:
        train(recipe)
    assert all(f"step {s}: ['" in str(e.value) for s in (0, 2, 3))


def test_the_consecutive_count_continues_after_a_resume(world, tmp_path, monkeypatch):
    """Steps 1, 2 skipped before the kill, step 3 after it: three in a row, across the resume."""
    _poison_loss(monkeypatch, {1, 2, 3}, "inf")
    recipe = tiny_recipe(1, world, tmp_path, "trainer.max_steps=6", "trainer.nan_policy=skip",
                         "trainer.nan_skip_max_consecutive=2", "trainer.checkpoint.every_n_train_steps=1")
    with pytest.raises(CrashAt.Crash):
        train(recipe, callbacks=[CrashAt(3)])
    recipe.trainer.resume_from = "last"
    with pytest.raises(NonFiniteLimitError, match=r"3 non-finite batches in a row"):
        train(recipe)


def test_skip_counters_continue_after_a_resume(world, tmp_path, monkeypatch):
    _poison_loss(monkeypatch, {1, 4}, "nan")
    extra = ("trainer.max_steps=5", "trainer.nan_policy=skip", "trainer.checkpoint.every_n_train_steps=1")
    uninterrupted = train(tiny_recipe(1, world, tmp_path / "a", *extra))
    recipe = tiny_recipe(1, world, tmp_path / "b", *extra)
    with pytest.raises(CrashAt.Crash):
        train(recipe, callbacks=[CrashAt(3)])
    recipe.trainer.resume_from = "last"
    resumed = train(recipe)
    assert _last(uninterrupted, "train/skipped_batches") == 2.0
    assert _last(resumed, "train/skipped_batches") == 2.0


def test_guard_window_and_state_round_trip():
    guard = NonFiniteGuard(SkipLimits(max_consecutive=3, max_fraction=0.25, window=8))  # allows 2 in 8
    for step, bad in enumerate([True, False, True, False, False, False, False, False, False, True]):
        guard.record(bad, step, [f"s{step}"])  # steps 0 and 2 fell out of the window before 9
    copy = NonFiniteGuard(guard.limits)
    copy.load_state_dict(guard.state_dict())
    copy.record(True, 10, ["s10"])  # 2 in the window: allowed
    with pytest.raises(NonFiniteLimitError, match=r"3 of the last 8 .*step 9: \['s9'\]; step 10: \['s10'\]; step 11"):
        copy.record(True, 11, ["s11"])


@pytest.mark.parametrize(
    ("override", "key"),
    [("trainer.nan_skip_max_fraction=1.5", "trainer.nan_skip_max_fraction"),
     ("trainer.nan_skip_window=0", "trainer.nan_skip_window"),
     ("trainer.nan_skip_max_consecutive=-1", "trainer.nan_skip_max_consecutive")],
)
def test_limits_are_validated_naming_the_key(world, tmp_path, override, key):
    with pytest.raises(RecipeError, match=key.replace(".", r"\.")):
        tiny_recipe(1, world, tmp_path, override)
