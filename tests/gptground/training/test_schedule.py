"""Learning-rate schedule: linear warmup, then cosine decay to min_lr_ratio, or constant."""

from __future__ import annotations

import pytest
import torch

from gptground.config import OptimConfig
from gptground.training.schedule import build_scheduler, lr_factor


def test_warmup_rises_linearly_to_the_peak():
    cfg = OptimConfig(warmup_ratio=0.1)
    assert [lr_factor(s, 100, cfg) for s in range(0, 10, 3)] == pytest.approx([0.1, 0.4, 0.7, 1.0])
    assert lr_factor(10, 100, cfg) == 1.0


def test_cosine_decays_to_the_floor_and_stays_there():
    cfg = OptimConfig(warmup_ratio=0.0, min_lr_ratio=0.1)
    assert lr_factor(0, 100, cfg) == 1.0
    assert lr_factor(50, 100, cfg) == pytest.approx(0.55)  # halfway: floor + half the range
    assert lr_factor(100, 100, cfg) == pytest.approx(0.1)
    assert lr_factor(150, 100, cfg) == pytest.approx(0.1)


def test_constant_schedule_holds_the_peak_after_warmup():
    cfg = OptimConfig(warmup_ratio=0.5, schedule="constant")
    assert [lr_factor(s, 4, cfg) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_scheduler_drives_the_optimizer():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=2.0)
    scheduler = build_scheduler(optimizer, 10, OptimConfig(warmup_ratio=0.2))
    lrs = []
    for _ in range(3):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1.0, 2.0, 2.0])
