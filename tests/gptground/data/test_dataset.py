"""MixtureDataset (per-draw seeding, skipped samples) and ResumableLoader (epoch position)."""

from __future__ import annotations

import pytest
import torch

from gptground.data.dataset import MixtureDataset, ResumableLoader, SkippedSample
from gptground.data.mixture import MixtureSampler, MixtureSource


class BadMedia(Exception):
    """Stands for a media error of one record."""


def _augment(record: str) -> tuple[str, torch.Tensor]:
    """A 'processor' with a random train transform; records named bad* fail to load."""
    if record.startswith("bad"):
        raise BadMedia(f"{record}.png: truncated file")
    return record, torch.rand(3)


def _dataset(sources) -> MixtureDataset:
    return MixtureDataset(sources, _augment, seed=5, skip_errors=(BadMedia,))


def test_the_same_draw_gets_the_same_augmentation_whatever_the_global_rng():
    dataset = _dataset([["a", "b"]])
    torch.manual_seed(0)
    first = dataset[(0, 1, 2)]
    torch.manual_seed(123)
    again = dataset[(0, 1, 2)]
    assert torch.equal(first[1], again[1])
    assert not torch.equal(first[1], dataset[(0, 1, 3)][1])  # another epoch, another draw


def test_drawing_leaves_the_global_rng_alone():
    dataset = _dataset([["a"]])
    torch.manual_seed(9)
    expected = torch.rand(1)
    torch.manual_seed(9)
    dataset[(0, 0, 0)]
    assert torch.equal(torch.rand(1), expected)


def test_a_failing_record_becomes_a_skipped_sample_naming_it():
    skipped = _dataset([["ok", "bad-7"]])[(0, 1, 0)]
    assert isinstance(skipped, SkippedSample)
    assert skipped.sample_id == "source 0 record 1"  # plain strings have no id attribute
    assert "bad-7.png: truncated file" in skipped.reason


def test_other_errors_propagate():
    dataset = MixtureDataset([["bad"]], _augment, seed=0, skip_errors=(KeyError,))
    with pytest.raises(BadMedia):
        dataset[(0, 0, 0)]


def _loader(batch_size: int = 2, world_size: int = 1, rank: int = 0) -> ResumableLoader:
    sources = [MixtureSource("letters", 6), MixtureSource("digits", 4)]
    sampler = MixtureSampler(sources, 10, seed=1, rank=rank, world_size=world_size)
    data = [[f"l{i}" for i in range(6)], [f"d{i}" for i in range(4)]]
    return ResumableLoader(
        _dataset(data), batch_size=batch_size, sampler=sampler, drop_last=True,
        collate_fn=lambda items: [name for name, _ in items],
    )


def _epoch(loader: ResumableLoader, epoch: int) -> list[list[str]]:
    loader.sampler.set_epoch(epoch)  # what Lightning does at each epoch start
    return list(loader)


def test_a_restored_loader_continues_the_epoch_then_starts_the_next_whole():
    reference = _loader()
    epoch0, epoch1 = _epoch(reference, 0), _epoch(reference, 1)
    assert len(epoch0) == 5

    interrupted = _loader()
    interrupted.sampler.set_epoch(0)
    interrupted.consumed = 2  # two batches finished when the checkpoint was taken
    state = interrupted.state_dict()
    assert state == {"epoch": 0, "draws": 4}

    resumed = _loader()
    resumed.load_state_dict(state)
    assert _epoch(resumed, 0) == epoch0[2:]
    assert resumed.consumed == 2  # counting goes on from the restored position
    assert _epoch(resumed, 1) == epoch1
    assert resumed.consumed == 0


def test_a_checkpoint_at_the_end_of_an_epoch_resumes_with_the_next_epoch():
    reference = _loader()
    epoch1 = (_epoch(reference, 0), _epoch(reference, 1))[1]
    resumed = _loader()
    resumed.load_state_dict({"epoch": 0, "draws": 10})
    assert resumed.sampler.epoch == 1
    assert list(resumed) == epoch1  # even before Lightning calls set_epoch (worker prefetch)


def test_the_position_counts_the_draws_of_all_ranks():
    loader = _loader(batch_size=2, world_size=2, rank=1)
    loader.consumed = 1
    assert loader.state_dict()["draws"] == 4  # 1 batch x 2 samples x 2 ranks


def test_the_loader_needs_a_mixture_sampler_and_drop_last():
    with pytest.raises(TypeError, match="MixtureSampler"):
        ResumableLoader([1, 2, 3], batch_size=1, drop_last=True)
    sampler = MixtureSampler([MixtureSource("a", 4)], 4)
    with pytest.raises(ValueError, match="drop_last"):
        ResumableLoader(_dataset([["a"] * 4]), batch_size=1, sampler=sampler)
