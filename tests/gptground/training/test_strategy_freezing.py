"""Stage 1 freezes the old embedding rows and every frozen weight under each distributed
strategy: 2 gloo processes on CPU, the tiny stage-1 model wrapped as the strategy wraps it,
several AdamW steps with weight decay; then the exported weights (what ``model.safetensors``
holds) are compared with those before training.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from strategy_runs import worker

KINDS = ["ddp", "fsdp", "fsdp2"]
DEEPSPEED_KINDS = ["deepspeed_stage_2", "deepspeed_stage_3"]
EMBED = "decoder.model.embed_tokens.weight"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(out, kinds: list[str]) -> dict[str, dict]:
    """kind -> {"before", "after", "new_ids"}, from one spawn of two processes."""
    mp.spawn(worker, args=(2, _free_port(), kinds, str(out)), nprocs=2, join=True)
    return {kind: torch.load(out / f"{kind}.pt") for kind in kinds}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _spawn(tmp_path_factory.mktemp("strategy-runs"), KINDS)


@pytest.fixture(scope="module")
def deepspeed_runs(tmp_path_factory):
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'gptground[deepspeed]')")
    return _spawn(tmp_path_factory.mktemp("deepspeed-runs"), DEEPSPEED_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_old_rows_and_frozen_weights_stay_bit_identical(runs, kind):
    _check_frozen(kind, runs[kind])


@pytest.mark.parametrize("kind", DEEPSPEED_KINDS)
def test_old_rows_and_frozen_weights_stay_bit_identical_under_deepspeed(deepspeed_runs, kind):
    _check_frozen(kind, deepspeed_runs[kind])


def _check_frozen(kind: str, run: dict) -> None:
    before, after, new_ids = run["before"], run["after"], run["new_ids"]
    assert sorted(before) == sorted(after)  # the export has the plain model's keys
    old = torch.ones(before[EMBED].shape[0], dtype=torch.bool)
    old[new_ids] = False
    changed_old_rows = (before[EMBED][old] != after[EMBED][old]).any(dim=1).sum().item()
    assert changed_old_rows == 0, f"{kind}: {changed_old_rows} old embedding rows changed"
    assert (before[EMBED][new_ids] != after[EMBED][new_ids]).any(dim=1).all(), f"{kind}: a new row did not train"
    frozen = [k for k in before if k != EMBED and ".adapter." not in k]
    assert [k for k in frozen if not torch.equal(before[k], after[k])] == []
