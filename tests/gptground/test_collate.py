"""collate: padding, masks, and per-modality media stacks with their batch rows."""

from __future__ import annotations

import pytest
import torch

from gptground.collate import collate
from gptground.processor import IGNORE_INDEX, MediaMeta, Sample

PAD = 3


def sample(sid: str, n: int, **media: torch.Tensor) -> Sample:
    ids = torch.arange(10, 10 + n)
    labels = torch.where(torch.arange(n) >= n - 2, ids, IGNORE_INDEX)  # last two tokens trained
    meta = {name: MediaMeta(source=f"{sid}.{name}") for name in media}
    return Sample(sid, ids, labels, dict(media), meta)


def test_rows_are_right_padded_with_masks_and_ignored_labels():
    batch = collate([sample("a", 5), sample("b", 3)], pad_id=PAD)
    assert batch["input_ids"].tolist() == [[10, 11, 12, 13, 14], [10, 11, 12, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 13, 14], [-100, 11, 12, -100, -100]]
    assert batch["sample_ids"] == ["a", "b"]
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long


def test_left_padding_for_generation_ends_every_row_at_the_last_column():
    batch = collate([sample("a", 2), sample("b", 4)], pad_id=PAD, padding_side="left")
    assert batch["input_ids"].tolist() == [[PAD, PAD, 10, 11], [10, 11, 12, 13]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]


def test_media_are_stacked_per_modality_with_their_batch_rows():
    img = [torch.full((3, 2, 2), float(i)) for i in range(3)]
    snd = torch.ones(4)
    samples = [sample("a", 3, image=img[0]), sample("b", 3, audio=snd), sample("c", 3, image=img[2], audio=snd * 2)]
    batch = collate(samples, pad_id=PAD)
    assert sorted(batch["media"]) == ["audio", "image"]
    assert torch.equal(batch["media"]["image"], torch.stack([img[0], img[2]]))
    assert batch["media_index"]["image"].tolist() == [0, 2]
    assert batch["media_index"]["audio"].tolist() == [1, 2]
    assert torch.equal(batch["media"]["audio"][1], snd * 2)
    assert [m.source for m in batch["media_meta"]["audio"]] == ["b.audio", "c.audio"]


def test_text_only_batch_has_empty_media():
    batch = collate([sample("a", 2)], pad_id=PAD)
    assert batch["media"] == {} and batch["media_index"] == {}


def test_media_of_different_shapes_name_the_samples():
    samples = [sample("a", 2, image=torch.zeros(3, 2, 2)), sample("b", 2, image=torch.zeros(3, 4, 4))]
    with pytest.raises(ValueError, match="image inputs differ in shape.*'b': \\(3, 4, 4\\)"):
        collate(samples, pad_id=PAD)


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        collate([], pad_id=PAD)
    with pytest.raises(ValueError, match="padding_side"):
        collate([sample("a", 2)], pad_id=PAD, padding_side="middle")
