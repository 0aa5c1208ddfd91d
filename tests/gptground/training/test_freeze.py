"""What a stage freezes stays bit-identical through its training steps; what it trains moves."""

from __future__ import annotations

import re

import pytest
import torch
from training_fixtures import Snapshot, tiny_recipe

from gptground.training.run import train


def _changed(snapshot: Snapshot, name: str) -> bool:
    return not torch.equal(snapshot.before[name], snapshot.after[name])


def _part(snapshot: Snapshot, part: str) -> list[str]:
    """Parameter names of every modality's ``part`` ("encoder" or "adapter")."""
    return [n for n in snapshot.before if re.match(rf"modalities\.\w+\.{part}\.", n)]


@pytest.mark.parametrize("fused", [True, False], ids=["fused-adamw", "looped-adamw"])
def test_stage1_trains_adapters_and_new_token_rows_only(world, tmp_path, fused):
    snapshot = Snapshot()
    # weight_decay > 0 would move frozen rows of a trainable matrix if they were decayed.
    recipe = tiny_recipe(1, world, tmp_path, "trainer.max_steps=3", "optim.weight_decay=0.1", f"optim.fused={fused}")
    train(recipe, callbacks=[snapshot])

    embed = "decoder.model.embed_tokens.weight"
    new_rows = snapshot.new_token_ids
    old_rows = torch.ones(snapshot.before[embed].shape[0], dtype=torch.bool)
    old_rows[new_rows] = False
    assert torch.equal(snapshot.before[embed][old_rows], snapshot.after[embed][old_rows])
    assert not torch.equal(snapshot.before[embed][new_rows], snapshot.after[embed][new_rows])

    frozen = [n for n in snapshot.before if n.startswith("decoder.") and n != embed] + _part(snapshot, "encoder")
    adapters = _part(snapshot, "adapter")
    assert frozen and adapters
    assert [n for n in frozen if _changed(snapshot, n)] == []
    assert sum(_changed(snapshot, n) for n in adapters) > len(adapters) // 2


def test_stage2_trains_the_decoder_but_never_the_encoders(world, tmp_path):
    snapshot = Snapshot()
    train(tiny_recipe(2, world, tmp_path, "trainer.max_steps=2"), callbacks=[snapshot])
    encoders = _part(snapshot, "encoder")
    decoder = [n for n in snapshot.before if n.startswith("decoder.")]
    assert encoders and [n for n in encoders if _changed(snapshot, n)] == []
    assert all(_changed(snapshot, n) for n in decoder if n.endswith("q_proj.weight"))
