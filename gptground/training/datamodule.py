"""The LightningDataModule: records -> replay mixture -> processor -> batches."""

from __future__ import annotations

import functools

import lightning as L
import torch
from torch.utils.data import DataLoader

from gptground.config import RecipeConfig, SourceConfig
from gptground.data.dataset import MixtureDataset, ResumableLoader, SkippedSample
from gptground.data.mixture import MixtureSampler, MixtureSource
from gptground.data.readers import read_records
from gptground.collate import collate
from gptground.processor import Processor, SampleError
from modalities import MediaError


def collate_kept(samples, pad_id: int):
    """Collate the samples that loaded; count the skipped ones. None if none loaded."""
    kept = [s for s in samples if not isinstance(s, SkippedSample)]
    if not kept:
        return None
    batch = collate(kept, pad_id)
    del batch["media_meta"]  # training needs no sizes or times; Lightning cannot move them
    batch["skipped"] = len(samples) - len(kept)
    return batch


class GroundingDataModule(L.LightningDataModule):
    """Reads the recipe's sources once per process and serves rank-disjoint batches."""

    def __init__(self, recipe: RecipeConfig, tokenizer, modalities):
        super().__init__()
        self.recipe = recipe
        self.tokenizer = tokenizer
        self.modalities = modalities
        self.train_sets: list = []
        self.val_sets: list = []

    def _read(self, sources: list[SourceConfig]) -> list:
        on_error = self.recipe.data.on_bad_record
        return [read_records(s.path, on_error=on_error) for s in sources]

    def _processor(self, train: bool) -> Processor:
        d = self.recipe.data
        return Processor(
            tokenizer=self.tokenizer,
            template=d.template,
            modalities=self.modalities,
            max_length=d.max_length,
            media_roots=d.roots,
            train=train,
        )

    def setup(self, stage: str) -> None:
        d = self.recipe.data
        if stage == "fit" and not self.train_sets:
            self.train_sets = self._read(d.sources) + self._read(d.replay)
        if stage in ("fit", "validate") and not self.val_sets and d.val_sources:
            self.val_sets = self._read(d.val_sources)

    def _rank(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self) -> ResumableLoader:
        d = self.recipe.data
        rank, world = self._rank()
        mix = [MixtureSource(s.name, len(r), s.weight) for s, r in zip(d.sources, self.train_sets)]
        mix += [
            MixtureSource(s.name, len(r), s.weight, replay=True)
            for s, r in zip(d.replay, self.train_sets[len(d.sources) :])
        ]
        total = d.samples_per_epoch or sum(m.size for m in mix if not m.replay)
        sampler = MixtureSampler(mix, total, d.replay_ratio, self.recipe.run.seed, rank, world)
        dataset = MixtureDataset(
            self.train_sets, self._processor(train=True), self.recipe.run.seed, (SampleError, MediaError)
        )
        return ResumableLoader(
            dataset,
            batch_size=d.batch_size,
            sampler=sampler,
            collate_fn=functools.partial(collate_kept, pad_id=self.tokenizer.pad_token_id),
            num_workers=d.num_workers,
            drop_last=True,
        )

    def val_dataloader(self):
        if not self.val_sets:
            return []
        d = self.recipe.data
        rank, world = self._rank()
        keys = [(s, i, 0) for s, records in enumerate(self.val_sets) for i in range(len(records))]
        dataset = MixtureDataset(
            self.val_sets, self._processor(train=False), self.recipe.run.seed, (SampleError, MediaError)
        )
        return DataLoader(
            _KeyedSubset(dataset, keys[rank::world]),
            batch_size=d.batch_size,
            collate_fn=functools.partial(collate_kept, pad_id=self.tokenizer.pad_token_id),
            num_workers=d.num_workers,
        )


class _KeyedSubset(torch.utils.data.Dataset):
    """A fixed list of (source, record, epoch) keys of a MixtureDataset, in order."""

    def __init__(self, dataset: MixtureDataset, keys: list[tuple[int, int, int]]):
        self.dataset, self.keys = dataset, keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int):
        return self.dataset[self.keys[i]]
