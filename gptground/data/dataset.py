"""Map-style dataset over several record lists, drawn by a MixtureSampler.

A record that fails to load (bad media, placeholder mismatch, all answer tokens cut off)
is skipped and counted, never trained on and never fatal to the epoch.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedSample:
    """Stands in for a sample that failed to load; the collate function drops it."""

    sample_id: str
    reason: str


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
        # Seeding per draw makes random train transforms identical in a resumed run.
        draw_seed = zlib.crc32(f"{self.seed}/{epoch}/{source}/{index}".encode())
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(draw_seed)
                return self.process(record)
        except self.skip_errors as e:
            sample_id = getattr(record, "id", f"source {source} record {index}")
            log.warning("skipping sample %s: %s", sample_id, e)
            return SkippedSample(str(sample_id), str(e))


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in Lightning checkpoints.

    Lightning prefetches a batch ahead, so the loader cannot count what it yielded;
    ``consumed`` is advanced by the ``LoaderPosition`` callback after each training batch.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.consumed = 0  # batches of the current epoch that training has finished
        self._resumed = False

    def __iter__(self):
        if not self._resumed:
            self.consumed = 0
        self._resumed = False
        return super().__iter__()

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.skip = state["consumed"] * self.batch_size
        self.consumed = state["consumed"]
        self._resumed = True
