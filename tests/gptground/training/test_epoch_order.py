"""A training run draws a new order every epoch (issue 17: a sampler repeating epoch 0's
order survived the whole suite)."""

from __future__ import annotations

from training_fixtures import read_trace, tiny_recipe

from gptground.training.callbacks import SampleTrace
from gptground.training.run import train


def test_every_epoch_trains_on_the_records_in_a_new_order(world, tmp_path):
    # 4 steps of 4 draws per epoch (16 records, one draw each): 8 steps are epochs 0 and 1.
    train(tiny_recipe(1, world, tmp_path / "runs", "trainer.max_steps=8"),
          callbacks=[SampleTrace(str(tmp_path / "trace"))])
    by_epoch: dict[int, list[str]] = {}
    for line in read_trace(tmp_path / "trace")[0]:
        by_epoch.setdefault(line["epoch"], []).extend(line["sample_ids"])
    assert sorted(by_epoch) == [0, 1]
    first, second = by_epoch[0], by_epoch[1]
    assert len(set(first)) == 16 and sorted(first) == sorted(second)  # each record once per epoch
    assert first != second
