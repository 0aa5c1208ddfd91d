"""Gradient clipping by norm under bf16-mixed with the fused AdamW (the GPU defaults): Lightning
refuses that pair for every mixed precision; bf16 has no gradient scaler, so we clip."""

from __future__ import annotations

import math

import pytest
import torch
from training_fixtures import tiny_recipe

from gptground.training.module import GroundingLitModule
from gptground.training.run import train


@pytest.fixture
def clipped_norms(monkeypatch):
    """The global gradient norm right after each step's clipping."""
    norms: list[float] = []
    clip = GroundingLitModule.configure_gradient_clipping

    def recorded(self, optimizer, *args, **kwargs):
        clip(self, optimizer, *args, **kwargs)
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    monkeypatch.setattr(GroundingLitModule, "configure_gradient_clipping", recorded)
    return norms


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_norm_clipping_holds_with_the_fused_adamw(world, tmp_path, clipped_norms, precision):
    recipe = tiny_recipe(1, world, tmp_path, "trainer.accelerator=cpu", f"trainer.precision={precision}",
                         "optim.fused=true", "trainer.gradient_clip_val=0.001", "trainer.max_steps=2")
    train(recipe)
    assert len(clipped_norms) == 2 and all(math.isfinite(n) for n in clipped_norms)
    assert max(clipped_norms) <= 0.001 * (1 + 1e-3)
