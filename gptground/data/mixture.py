"""Weighted mixture of sources with replay of earlier stages, split across ranks, resumable.

An epoch is a fixed list of (source, index) draws made from ``seed`` and the epoch number
only, so every rank computes the same list and takes its own disjoint stride of it, and a
resumed run recomputes the exact list and skips what was already consumed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler


@dataclass(frozen=True)
class MixtureSource:
    """One source of a mixture: ``size`` records, sampled with relative ``weight``."""

    name: str
    size: int
    weight: float = 1.0
    replay: bool = False  # drawn from the replay share of the epoch


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` draws over groups in proportion to ``weights`` (largest remainder)."""
    w = torch.tensor(weights, dtype=torch.float64)
    exact = total * w / w.sum()
    counts = exact.floor().long()
    short = total - int(counts.sum())
    order = torch.argsort(exact - counts, descending=True, stable=True)
    counts[order[:short]] += 1
    return counts.tolist()


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch's draws; mixed so that (seed, epoch + 1) never equals (seed + 1, epoch)."""
    return zlib.crc32(f"mixture/{seed}/{epoch}".encode())


def _check_sources(sources: Sequence[MixtureSource], replay_ratio: float) -> None:
    if not sources:
        raise ValueError("a mixture needs at least one source")
    empty = [s.name for s in sources if s.size <= 0]
    if empty:
        raise ValueError(f"mixture sources without records: {empty}")
    bad_weights = [s.name for s in sources if not s.weight > 0]
    if bad_weights:
        raise ValueError(f"mixture sources need a weight > 0: {bad_weights}")
    if not 0.0 <= replay_ratio < 1.0:
        raise ValueError(f"replay_ratio must be in [0, 1), got {replay_ratio}")
    if replay_ratio > 0 and not any(s.replay for s in sources):
        raise ValueError("replay_ratio > 0 but no replay source was given")
    if not any(not s.replay for s in sources):
        raise ValueError("a mixture needs at least one non-replay source")


class MixtureSampler(Sampler[tuple[int, int, int]]):
    """Yields (source index, record index, epoch) triples for this rank.

    The epoch travels with each draw so that random train transforms can be seeded per
    draw, which makes a resumed run see exactly the same augmented samples.

    An epoch holds exactly ``round(samples_per_epoch * replay_ratio)`` replay draws; inside
    each group (this stage's sources, replay sources) draws are split by weight. A source
    is drawn in whole shuffled passes, so no record repeats before all of its source's
    records were drawn.

    Args:
        sources: the current stage's and replay sources (``replay=True``).
        samples_per_epoch: draws per epoch over all ranks (rounded down to a multiple of
            ``world_size`` so that every rank gets the same count).
        replay_ratio: share of the epoch drawn from the replay sources.
        seed: base seed; each epoch's draws come from ``epoch_seed(seed, epoch)``.
        rank, world_size: this process's share is draws[rank::world_size].
        group_batch_size: 0 = draws in random order. B > 0 = every global batch (B draws
            on each rank) comes from one source where possible: inside each window of
            ``group_window`` global batches the draws are ordered by source, cut into
            global batches and the batches shuffled. Samples of one source have similar
            lengths, so batches carry less padding (LLaVA's group_by_modality_length does
            the same for image vs text-only samples). The epoch's draws stay the same set.
        group_window: global batches per window (the larger, the purer the batches and
            the longer a source's batches may cluster in time).
    """

    def __init__(
        self,
        sources: Sequence[MixtureSource],
        samples_per_epoch: int,
        replay_ratio: float = 0.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        group_batch_size: int = 0,
        group_window: int = 16,
    ):
        _check_sources(sources, replay_ratio)
        if group_batch_size < 0 or group_window < 1:
            raise ValueError(f"group_batch_size must be >= 0 and group_window >= 1, got {group_batch_size}, {group_window}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.sources = list(sources)
        self.replay_ratio = replay_ratio
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.group_batch_size, self.group_window = group_batch_size, group_window
        self.total = samples_per_epoch - samples_per_epoch % world_size
        if self.total <= 0:
            raise ValueError(f"samples_per_epoch {samples_per_epoch} < world size {world_size}")
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, draws of all ranks to skip)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, consumed: int) -> None:
        """Start the next pass over ``epoch`` after its first ``consumed`` draws (all ranks).

        ``consumed`` counts the global list, so a run may resume on another world size:
        this rank then skips ``consumed // world_size`` of its own draws.
        """
        if not 0 <= consumed <= self.total:
            raise ValueError(f"cannot resume after {consumed} draws of an epoch of {self.total}")
        self.epoch = epoch
        self._resume = (epoch, consumed)

    def draws(self, epoch: int) -> torch.Tensor:
        """All ranks' draws of one epoch: (total, 2) long tensor of (source, record)."""
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        n_replay = round(self.total * self.replay_ratio)
        parts = []
        for is_replay, n in ((False, self.total - n_replay), (True, n_replay)):
            members = [i for i, s in enumerate(self.sources) if s.replay == is_replay]
            if n == 0 or not members:
                continue
            counts = _allocate(n, [self.sources[i].weight for i in members])
            parts += [self._draw_from(i, count, g) for i, count in zip(members, counts)]
        draws = torch.cat(parts)
        draws = draws[torch.randperm(len(draws), generator=g)]
        return self._group_by_source(draws, g) if self.group_batch_size else draws

    def _group_by_source(self, draws: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Reorder draws so that each global batch comes from one source where possible.

        A global batch is ``group_batch_size * world_size`` consecutive draws: rank r's
        share of it, draws[r::world_size], is exactly r's batch of that step.
        """
        global_batch = self.group_batch_size * self.world_size
        window = global_batch * self.group_window
        out = []
        for block in draws.split(window):
            block = block[torch.argsort(block[:, 0], stable=True)]  # same source together
            full = len(block) - len(block) % global_batch
            batches = block[:full].split(global_batch)
            out += [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
            out.append(block[full:])  # a last, partial global batch stays last (dropped by drop_last)
        return torch.cat(out)

    def _draw_from(self, source: int, count: int, g: torch.Generator) -> torch.Tensor:
        """``count`` record indices: whole shuffled passes over the source, then a partial one."""
        size = self.sources[source].size
        passes = -(-count // size)
        idx = torch.cat([torch.randperm(size, generator=g) for _ in range(passes)]) if count else torch.empty(0)
        return torch.stack([torch.full((count,), source), idx[:count].long()], dim=1)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        epoch = self.epoch
        skip = 0
        if self._resume is not None and self._resume[0] == epoch:
            skip = self._resume[1] // self.world_size
        self._resume = None
        mine = self.draws(epoch)[self.rank :: self.world_size]
        for s, i in mine[skip:].tolist():
            yield s, i, epoch

    def __len__(self) -> int:
        return self.total // self.world_size
