"""Splitting evaluation over processes and joining the answers again.

Every process answers ``items[rank::world]``; the answers are gathered to every process
with ``torch.distributed.all_gather_object`` and put back in input order, so metrics are
computed over exactly the items given, each once. (A ``DistributedSampler`` instead pads
the last shard with repeated items, which changes the numbers with the process count.)
Without an initialised process group this is the one-process case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_positions(count: int, rank: int, world: int) -> range:
    """Positions of the items this rank answers: rank, rank + world, ..."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world} processes")
    return range(rank, count, world)


def gather_in_order(local: Sequence[tuple[int, T]], count: int) -> list[T]:
    """Every rank's (position, value) pairs joined into one list in position order.

    Raises:
        RuntimeError: positions are missing or repeated after the gather (a sharding bug).
    """
    _, world = rank_and_world()
    if world == 1:
        parts = [list(local)]
    else:
        parts: list = [None] * world
        dist.all_gather_object(parts, list(local))
    pairs = sorted((pair for part in parts for pair in part), key=lambda pair: pair[0])
    positions = [position for position, _ in pairs]
    if positions != list(range(count)):
        raise RuntimeError(f"gathered {len(positions)} answers for {count} items, not one each")
    return [value for _, value in pairs]
