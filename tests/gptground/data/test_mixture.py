"""MixtureSampler: weighted draws with replay, deterministic per seed, disjoint per rank,
resumable mid-epoch."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from gptground.data.mixture import MixtureSampler, MixtureSource, epoch_seed

SOURCES = [
    MixtureSource("rec", 50, weight=2.0),
    MixtureSource("tg", 30, weight=1.0),
    MixtureSource("caption", 40, weight=1.0, replay=True),
    MixtureSource("old_rec", 10, weight=3.0, replay=True),
]


def _draws(sampler: MixtureSampler) -> list[tuple[int, int, int]]:
    return list(sampler)


def test_same_seed_and_epoch_give_the_same_draws_and_epochs_differ():
    a = MixtureSampler(SOURCES, 200, replay_ratio=0.25, seed=7)
    b = MixtureSampler(SOURCES, 200, replay_ratio=0.25, seed=7)
    assert torch.equal(a.draws(0), b.draws(0))
    assert not torch.equal(a.draws(0), a.draws(1))
    assert not torch.equal(a.draws(0), MixtureSampler(SOURCES, 200, 0.25, seed=8).draws(0))


def test_epoch_seeds_of_neighbouring_run_seeds_do_not_collide():
    seeds = {epoch_seed(seed, epoch) for seed in range(20) for epoch in range(20)}
    assert len(seeds) == 400


def test_the_epoch_travels_with_each_draw():
    sampler = MixtureSampler(SOURCES, 40, replay_ratio=0.25, seed=0)
    sampler.set_epoch(3)
    assert {epoch for _, _, epoch in sampler} == {3}


def test_replay_share_and_weights_are_exact_per_epoch():
    sampler = MixtureSampler(SOURCES, 1000, replay_ratio=0.3, seed=1)
    counts = Counter(sampler.draws(0)[:, 0].tolist())
    assert counts[2] + counts[3] == 300  # replay: round(1000 * 0.3)
    assert (counts[0], counts[1]) == (467, 233)  # 700 split 2:1 (largest remainder)
    assert (counts[2], counts[3]) == (75, 225)  # 300 split 1:3


@pytest.mark.parametrize("ratio", [0.1, 0.5])
def test_replay_share_of_every_rank_and_of_a_prefix_is_within_binomial_bounds(ratio):
    """Replay draws are spread through the epoch: a rank's share, and the share of the
    first steps of a run shorter than an epoch, stay near the ratio (5 sigma)."""
    world, total = 4, 2000
    for epoch in range(5):
        for rank in range(world):
            sampler = MixtureSampler(SOURCES, total, ratio, seed=epoch, rank=rank, world_size=world)
            sampler.set_epoch(epoch)
            for n in (len(sampler), 100):
                replay = sum(s >= 2 for s, _, _ in _draws(sampler)[:n])
                sigma = math.sqrt(n * ratio * (1 - ratio))
                assert abs(replay - n * ratio) <= 5 * sigma, (epoch, rank, n, replay)


def test_ranks_take_disjoint_strides_that_cover_the_epoch():
    world = 3
    samplers = [MixtureSampler(SOURCES, 100, 0.2, seed=4, rank=r, world_size=world) for r in range(world)]
    full = samplers[0].draws(0)  # the epoch every rank computes
    assert {len(s) for s in samplers} == {33}  # 100 rounded down to a multiple of 3, split evenly
    per_rank = [_draws(s) for s in samplers]
    positions = [[r + k * world for k in range(len(d))] for r, d in enumerate(per_rank)]
    for r, draws in enumerate(per_rank):
        expected = [tuple(full[p].tolist()) for p in positions[r]]
        assert [(s, i) for s, i, _ in draws] == expected
    assert sorted(p for ps in positions for p in ps) == list(range(99))


def test_a_source_is_drawn_in_whole_passes():
    sources = [MixtureSource("small", 7), MixtureSource("big", 100)]
    draws = MixtureSampler(sources, 60, seed=2).draws(0)
    small = draws[draws[:, 0] == 0][:, 1].tolist()
    times = Counter(small).values()
    assert len(small) == 30 and set(Counter(small)) == set(range(7))
    assert max(times) - min(times) <= 1  # 30 draws over 7 records: 4 or 5 each


def test_resume_skips_what_all_ranks_consumed_in_that_epoch_only():
    sampler = MixtureSampler(SOURCES, 40, 0.25, seed=3, rank=1, world_size=2)
    sampler.set_epoch(2)
    uninterrupted = _draws(sampler)
    sampler.resume(2, consumed=16)  # 8 draws of each rank
    assert _draws(sampler) == uninterrupted[8:]
    assert _draws(sampler) == uninterrupted  # the next pass starts at the beginning
    sampler.resume(2, consumed=16)
    sampler.set_epoch(3)  # a resume point of another epoch does not apply
    assert len(_draws(sampler)) == len(sampler)


def test_resume_on_another_world_size_skips_the_consumed_share():
    one = MixtureSampler(SOURCES, 40, 0.25, seed=3)
    full = [(s, i) for s, i, _ in one]
    consumed = 16  # positions 0..15 of the epoch were trained on by the old ranks
    rest = []
    for rank in range(2):
        sampler = MixtureSampler(SOURCES, 40, 0.25, seed=3, rank=rank, world_size=2)
        sampler.resume(0, consumed)
        rest += [(s, i) for s, i, _ in sampler]
    assert sorted(rest) == sorted(full[consumed:])


@pytest.mark.parametrize("world", [1, 3])
def test_grouped_batches_come_from_one_source_on_every_rank_and_keep_the_epochs_draws(world):
    batch, total = 4, 480
    plain = MixtureSampler(SOURCES, total, 0.25, seed=3, world_size=world)
    grouped = [MixtureSampler(SOURCES, total, 0.25, seed=3, rank=r, world_size=world, group_batch_size=batch)
               for r in range(world)]
    # The same draws, only in another order.
    assert sorted(map(tuple, grouped[0].draws(0).tolist())) == sorted(map(tuple, plain.draws(0).tolist()))
    steps = [list(s) for s in grouped]
    n_steps = len(steps[0]) // batch
    mixed = 0
    for step in range(n_steps):
        sources = {s for rank in steps for s, _, _ in rank[step * batch:(step + 1) * batch]}
        mixed += len(sources) > 1  # only where a window's run of one source ends
    # 4 sources: at most 3 mixed global batches per window of 16.
    windows = -(-n_steps // 16)
    assert mixed <= 3 * windows
    assert mixed < n_steps / 4
    # Sources still alternate through the epoch rather than coming one after another.
    firsts = [steps[0][k * batch][0] for k in range(n_steps)]
    assert len({firsts[i] for i in range(16)}) > 1


def test_grouped_draws_resume_like_plain_ones():
    sampler = MixtureSampler(SOURCES, 96, seed=1, world_size=2, group_batch_size=4)
    full = sampler.draws(0)[0::2].tolist()
    sampler.resume(0, consumed=16)
    assert [[s, i] for s, i, _ in sampler] == full[8:]


@pytest.mark.parametrize(
    ("sources", "kwargs", "message"),
    [
        ([], {}, "at least one source"),
        ([MixtureSource("a", 0)], {}, "without records"),
        ([MixtureSource("a", 3, weight=0.0)], {}, "weight > 0"),
        ([MixtureSource("a", 3)], {"replay_ratio": 0.2}, "no replay source"),
        ([MixtureSource("a", 3, replay=True)], {}, "non-replay source"),
        ([MixtureSource("a", 3)], {"replay_ratio": 1.0}, "replay_ratio"),
        ([MixtureSource("a", 3)], {"world_size": 8}, "world size"),
        ([MixtureSource("a", 3)], {"rank": 2, "world_size": 2}, "outside world size"),
        ([MixtureSource("a", 3)], {"group_batch_size": -1}, "group_batch_size"),
        ([MixtureSource("a", 3)], {"group_batch_size": 2, "group_window": 0}, "group_window"),
    ],
)
def test_bad_mixtures_fail_with_a_reason(sources, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixtureSampler(sources, 4, **kwargs)


def test_resume_beyond_the_epoch_fails():
    sampler = MixtureSampler([MixtureSource("a", 3)], 4)
    with pytest.raises(ValueError, match="cannot resume after 5 draws"):
        sampler.resume(0, 5)


def test_each_epoch_iterates_its_own_draws():
    """Iteration after ``set_epoch(k)`` yields epoch k's draws, and epochs differ in order:
    a sampler replaying epoch 0 every epoch would fail here (issue 17)."""
    sampler = MixtureSampler(SOURCES, 60, replay_ratio=0.25, seed=3)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        orders.append([(s, i) for s, i, _ in sampler])
        assert orders[-1] == [tuple(row) for row in sampler.draws(epoch).tolist()]
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]
