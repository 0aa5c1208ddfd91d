"""Datamodule helpers: collating around skipped samples, epoch length, validation shards."""

from __future__ import annotations

import pytest
import torch
from training_fixtures import tiny_recipe

from gptground.config import RecipeError
from gptground.data.dataset import SkippedSample
from gptground.model.build import build_model
from gptground.processor import Sample
from gptground.training.datamodule import (
    GroundingDataModule,
    collate_kept,
    epoch_length,
    shard_keys,
)


def _sample(sample_id: str, n: int) -> Sample:
    ids = torch.arange(1, n + 1)
    return Sample(sample_id, ids, ids.clone())


def test_collate_kept_lists_skipped_samples_with_their_reason():
    batch = collate_kept([_sample("a", 3), SkippedSample("b", "b.png: truncated"), _sample("c", 5)], pad_id=0)
    assert batch["sample_ids"] == ["a", "c"]
    assert batch["skipped"] == [("b", "b.png: truncated")]
    assert batch["input_ids"].shape == (2, 5) and "media_meta" not in batch


def test_a_batch_of_only_skipped_samples_is_empty_not_missing():
    batch = collate_kept([SkippedSample("b", "bad")], pad_id=0)
    assert batch == {"sample_ids": [], "skipped": [("b", "bad")]}


def test_epoch_length_covers_own_records_once_with_replay_on_top():
    assert epoch_length(90, 0.0) == 90
    assert epoch_length(90, 0.1) == 100  # 90 own + 10 replay
    assert epoch_length(10, 0.5) == 20


def test_validation_shards_are_equal_and_cover_every_key():
    keys = list(range(7))
    shards = [shard_keys(keys, rank, 3) for rank in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert set().union(*shards) == set(keys)
    assert shard_keys([], 0, 2) == []


def test_an_epoch_smaller_than_a_batch_fails_naming_the_keys(world, tmp_path):
    recipe = tiny_recipe(1, world, tmp_path, "data.samples_per_epoch=3")
    data = GroundingDataModule(recipe, tokenizer=None, modalities={})
    data.setup("fit")
    with pytest.raises(RecipeError, match=r"3 samples, fewer than `data.batch_size` \(4\): raise `data.samples_per_epoch`"):
        data.train_sampler()


def test_filling_the_feature_cache_leaves_the_adapters_in_training_mode(world, tmp_path):
    """Else the run that fills the cache would train without dropout (and unlike a rerun)."""
    recipe = tiny_recipe(1, world, tmp_path, f"data.feature_cache={tmp_path / 'features'}")
    model, tokenizer = build_model(recipe.model)
    model.train()
    for modality in model.modalities.values():
        modality.encoder.eval()  # frozen encoders run in eval mode, as the modalities build them
    modes = {name: m.training for name, m in model.named_modules()}
    GroundingDataModule(recipe, tokenizer, model.modalities).prepare_data()
    assert any((tmp_path / "features").iterdir())  # the cache was filled
    assert {name: m.training for name, m in model.named_modules()} == modes
