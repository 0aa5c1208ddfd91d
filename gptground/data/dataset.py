"""Map-style dataset over several record lists, drawn by a MixtureSampler, and its loader.

A record that fails to load (bad media, placeholder mismatch, all answer tokens cut off)
becomes a ``SkippedSample`` naming it and the reason (the media error names the file); the
collate function drops it and the training module counts and logs it. It is never trained
on and never fatal to the epoch, even inside a DataLoader worker process.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from gptground.data.mixture import MixtureSampler


@dataclass(frozen=True)
class SkippedSample:
    """Stands in for a sample that failed to load; the collate function drops it."""

    sample_id: str
    reason: str


def draw_seed(seed: int, epoch: int, source: int, index: int) -> int:
    """Seed of the random train transforms of one draw (same draw, same augmentation)."""
    return zlib.crc32(f"{seed}/{epoch}/{source}/{index}".encode())


class MixtureDataset(Dataset):
    """Items are keyed by (source, record, epoch) as the MixtureSampler yields them.

    Args:
        sources: one list of records per mixture source (same order as the sampler's).
        process: record -> processed sample (the Processor); may raise.
        seed: base seed of the per-draw random streams of the train transforms.
        skip_errors: exception types that mean "skip this sample".
    """

    def __init__(
        self,
        sources: Sequence[Sequence],
        process: Callable,
        seed: int,
        skip_errors: tuple[type[BaseException], ...],
    ):
        self.sources = sources
        self.process = process
        self.seed = seed
        self.skip_errors = skip_errors

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def __getitem__(self, key: tuple[int, int, int]):
        source, index, epoch = key
        record = self.sources[source][index]
        # Seeding per draw (not per worker) makes random train transforms the same in a
        # resumed run and for any number of workers; fork_rng leaves the caller's RNG alone.
        # Only the CPU generator: torch.manual_seed would also queue seeds for every
        # accelerator backend (0.14 vs 0.002 ms a call here).
        try:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(draw_seed(self.seed, epoch, source, index))
                return self.process(record)
        except self.skip_errors as e:
            sample_id = getattr(record, "id", None) or f"source {source} record {index}"
            return SkippedSample(str(sample_id), str(e))


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in Lightning checkpoints.

    Lightning stores ``state_dict()`` of a train loader that has one in each checkpoint and
    hands it back to ``load_state_dict`` on resume. Lightning fetches a batch ahead, so the
    loader cannot count what it yielded; ``consumed`` is advanced by the ``LoaderPosition``
    callback after each finished training batch. The sampler must be a ``MixtureSampler``
    and ``drop_last`` must be set, so that every rank finishes the same number of batches.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, MixtureSampler):
            raise TypeError(f"ResumableLoader needs a MixtureSampler, got {type(self.sampler).__name__}")
        if not self.drop_last:
            raise ValueError("ResumableLoader needs drop_last=True (equal batch counts on every rank)")
        self.consumed = 0  # batches of the current epoch that training has finished
        self._restored = False

    def __iter__(self):
        if self._restored:
            self._restored = False  # this pass continues the restored epoch
        else:
            self.consumed = 0
        return super().__iter__()

    def state_dict(self) -> dict:
        """Epoch and draws consumed by all ranks (every rank finished ``consumed`` batches)."""
        draws = self.consumed * self.batch_size * self.sampler.world_size
        return {"epoch": self.sampler.epoch, "draws": draws}

    def load_state_dict(self, state: dict) -> None:
        """Continue where the checkpoint was taken; a finished epoch continues with the next."""
        epoch, draws = state["epoch"], state["draws"]
        self.consumed = draws // self.sampler.world_size // self.batch_size
        if self.consumed >= len(self):
            epoch, draws, self.consumed = epoch + 1, 0, 0
        self.sampler.resume(epoch, draws)
        self._restored = True
