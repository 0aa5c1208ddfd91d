"""The LightningDataModule: records -> replay mixture -> processor -> batches."""

from __future__ import annotations

import contextlib
import functools
import logging
import math

import lightning as L
import torch
from torch.utils.data import DataLoader

from gptground.collate import collate
from gptground.config import RecipeConfig, RecipeError, SourceConfig
from gptground.data.dataset import MixtureDataset, ResumableLoader, SkippedSample
from gptground.data.features import FeatureStore, media_sources
from gptground.data.mixture import MixtureSampler, MixtureSource
from gptground.data.readers import read_records
from gptground.processor import Processor, SampleError
from modalities import MediaError

SKIP_ERRORS = (SampleError, MediaError)  # a sample failing with these is skipped and counted

log = logging.getLogger(__name__)


def collate_kept(samples, pad_id: int) -> dict:
    """Collate the samples that loaded; list the skipped ones as (sample id, reason).

    A batch in which no sample loaded is ``{"sample_ids": [], "skipped": [...]}``: the
    training module skips its step and counts it.
    """
    kept = [s for s in samples if not isinstance(s, SkippedSample)]
    skipped = [(s.sample_id, s.reason) for s in samples if isinstance(s, SkippedSample)]
    if not kept:
        return {"sample_ids": [], "skipped": skipped}
    batch = collate(kept, pad_id)
    del batch["media_meta"]  # training needs no sizes or times; Lightning cannot move them
    batch["skipped"] = skipped
    return batch


def epoch_length(own: int, replay_ratio: float) -> int:
    """Draws per epoch when the recipe sets none: each own record once, replay on top."""
    return math.ceil(own / (1.0 - replay_ratio))


def shard_keys(keys: list, rank: int, world: int) -> list:
    """This rank's stride of ``keys``, padded by wrapping so that every rank gets as many.

    Equal counts keep the ranks' validation loops in step (the epoch-end reduction of
    ``val/loss`` is a collective); like DistributedSampler, a few items count twice.
    """
    if not keys:
        return []
    padded = [keys[i % len(keys)] for i in range(math.ceil(len(keys) / world) * world)]
    return padded[rank::world]


class GroundingDataModule(L.LightningDataModule):
    """Reads the recipe's sources once per process and serves rank-disjoint batches."""

    def __init__(self, recipe: RecipeConfig, tokenizer, modalities):
        super().__init__()
        self.recipe = recipe
        self.tokenizer = tokenizer
        self.modalities = modalities
        self.train_sets: list = []
        self.val_sets: list = []
        self.features: FeatureStore | None = None
        # The feature cache usually sits on storage all nodes share: one writer in the whole
        # job, never one per node racing on the same files. Other ranks wait at Lightning's
        # barrier, then read it (a node that cannot see it decodes raw media instead).
        self.prepare_data_per_node = False

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
            features=self.features,
        )

    def _dataset(self, sets: list, train: bool) -> MixtureDataset:
        return MixtureDataset(sets, self._processor(train), self.recipe.run.seed, SKIP_ERRORS)

    def _collate(self):
        return functools.partial(collate_kept, pad_id=self.tokenizer.pad_token_id)

    def _loader_generator(self) -> torch.Generator:
        """The loader's own RNG for worker base seeds, so that creating a data iterator never
        draws from the global RNG (which dropout uses, and which a resume restores)."""
        return torch.Generator().manual_seed(self.recipe.run.seed)

    def prepare_data(self) -> None:
        """Encode every media file of the recipe's data once, if `data.feature_cache` is set.

        Lightning runs this on global rank 0 only (``prepare_data_per_node`` is off), before
        ``setup`` on every rank, so ranks never race to write the store.
        """
        d = self.recipe.data
        if d.feature_cache:
            sets = self._read(d.sources + d.replay + d.val_sources)
            store = FeatureStore(d.feature_cache, self.modalities)
            with _modes_kept(self.modalities.values()):
                added = store.build(media_sources(sets, self.modalities, d.roots))
            log.info("feature cache %s: encoded %s new media files", d.feature_cache, added)

    def setup(self, stage: str) -> None:
        d = self.recipe.data
        if d.feature_cache and self.features is None:
            self.features = FeatureStore(d.feature_cache, self.modalities).load()
        if stage == "fit" and not self.train_sets:
            self.train_sets = self._read(d.sources) + self._read(d.replay)
        if stage in ("fit", "validate") and not self.val_sets and d.val_sources:
            self.val_sets = self._read(d.val_sources)

    def _rank(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def train_sampler(self) -> MixtureSampler:
        """This rank's sampler over the recipe's sources and replay sources."""
        d = self.recipe.data
        rank, world = self._rank()
        own, replay = self.train_sets[: len(d.sources)], self.train_sets[len(d.sources) :]
        mix = [MixtureSource(s.name, len(r), s.weight) for s, r in zip(d.sources, own)]
        mix += [MixtureSource(s.name, len(r), s.weight, replay=True) for s, r in zip(d.replay, replay)]
        total = d.samples_per_epoch or epoch_length(sum(len(r) for r in own), d.replay_ratio)
        sampler = MixtureSampler(
            mix, total, d.replay_ratio, self.recipe.run.seed, rank, world,
            group_batch_size=d.batch_size if d.group_by_source else 0,
        )
        if len(sampler) < d.batch_size:
            raise RecipeError(
                f"an epoch gives each of {world} process(es) {len(sampler)} samples, fewer than "
                f"`data.batch_size` ({d.batch_size}): raise `data.samples_per_epoch` or lower the batch size"
            )
        return sampler

    def train_dataloader(self) -> ResumableLoader:
        return ResumableLoader(
            self._dataset(self.train_sets, train=True),
            batch_size=self.recipe.data.batch_size,
            sampler=self.train_sampler(),
            collate_fn=self._collate(),
            num_workers=self.recipe.data.num_workers,
            drop_last=True,
            generator=self._loader_generator(),
        )

    def val_dataloader(self):
        if not self.val_sets:
            return []
        rank, world = self._rank()
        keys = [(s, i, 0) for s, records in enumerate(self.val_sets) for i in range(len(records))]
        return DataLoader(
            _KeyedSubset(self._dataset(self.val_sets, train=False), shard_keys(keys, rank, world)),
            batch_size=self.recipe.data.batch_size,
            collate_fn=self._collate(),
            num_workers=self.recipe.data.num_workers,
            generator=self._loader_generator(),
        )


@contextlib.contextmanager
def _modes_kept(modules):
    """Restore every submodule's train/eval flag on exit.

    The store encodes in eval mode; the adapters must come back to training mode, or the
    first run (the one that fills the cache) would train without dropout, and under DDP
    differently on the rank that filled it.
    """
    flags = [(m, m.training) for module in modules for m in module.modules()]
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


class _KeyedSubset(torch.utils.data.Dataset):
    """A fixed list of (source, record, epoch) keys of a MixtureDataset, in order."""

    def __init__(self, dataset: MixtureDataset, keys: list[tuple[int, int, int]]):
        self.dataset, self.keys = dataset, keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int):
        return self.dataset[self.keys[i]]
