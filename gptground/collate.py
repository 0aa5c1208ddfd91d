"""Batching processed samples: pad the token rows, stack each modality's media apart.

Media are batched per modality, since a batch mixes samples with an image, a video, a
sound, several or none: ``media[name]`` holds the B_m items of the B_m samples that have
one, and ``media_index[name]`` says which batch row each belongs to. The model encodes each
modality's stack once and scatters it into the rows' ``<xx_patch>`` positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from gptground.processor import IGNORE_INDEX, Sample

PADDING_SIDES = ("right", "left")


def collate(samples: Sequence[Sample], pad_id: int, padding_side: str = "right") -> dict[str, Any]:
    """A batch dict from samples.

    Args:
        samples: processed samples (training samples or prompts).
        pad_id: the tokenizer's pad token id.
        padding_side: "right" for training; "left" for batched generation, so that every
            prompt ends at the last column.

    Returns:
        ``input_ids`` (B, T) int64, ``attention_mask`` (B, T) int64 (1 = real token),
        ``labels`` (B, T) int64 (IGNORE_INDEX on padding), ``media`` {name: (B_m, ...)},
        ``media_index`` {name: (B_m,) int64 batch rows}, ``media_meta`` {name: [MediaMeta] in
        the order of ``media_index``}, ``encoded`` [names whose media are encoder features],
        ``sample_ids`` [B].
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
    length = max(len(s.input_ids) for s in samples)
    input_ids = torch.full((len(samples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), length), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample.input_ids)
        cols = slice(0, n) if padding_side == "right" else slice(length - n, length)
        input_ids[row, cols] = sample.input_ids
        labels[row, cols] = sample.labels
        attention_mask[row, cols] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    batch.update(_collate_media(samples))
    batch["sample_ids"] = [s.sample_id for s in samples]
    return batch


def _collate_media(samples: Sequence[Sample]) -> dict[str, dict[str, Any]]:
    media, media_index, media_meta, encoded = {}, {}, {}, []
    for name in sorted({name for s in samples for name in s.media}):
        rows = [i for i, s in enumerate(samples) if name in s.media]
        kinds = {name in samples[i].encoded for i in rows}
        if len(kinds) > 1:
            raise ValueError(f"{name}: a batch mixes cached encoder features with raw media")
        if kinds == {True}:
            encoded.append(name)
        items = [samples[i].media[name] for i in rows]
        shapes = {tuple(x.shape) for x in items}
        if len(shapes) > 1:
            found = {samples[i].sample_id: tuple(x.shape) for i, x in zip(rows, items)}
            raise ValueError(f"{name} inputs differ in shape and cannot be stacked: {found}")
        media[name] = torch.stack(items)
        media_index[name] = torch.tensor(rows, dtype=torch.long)
        media_meta[name] = [samples[i].media_meta[name] for i in rows]
    return {"media": media, "media_index": media_index, "media_meta": media_meta, "encoded": encoded}
