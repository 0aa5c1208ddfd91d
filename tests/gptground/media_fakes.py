"""Small stand-in modalities for processor tests: they load ``.npy`` arrays, nothing heavier.

They fulfil the ``modalities.base.Modality`` contract (attributes, special tokens, load,
transform) with identity encoders, so the processor is tested without the real image,
video and audio modalities.
"""

from __future__ import annotations

import io
from typing import ClassVar

import fsspec
import numpy as np
import torch
from torch import nn

from modalities.base import Media, Modality
from modalities.io import read_bytes, source_name

WIDTH = 16  # every fake transform returns a (WIDTH,) float vector


class FakeModality(Modality):
    """Loads an ``.npy`` array from a path, URL or file object; transform -> (WIDTH,) float32.

    The train transform adds 1.0, so tests can tell which transform ran.
    """

    config_class = dict
    tokens: ClassVar[int]

    def __init__(self) -> None:
        super().__init__(config={}, d_model=WIDTH)
        self.encoder = nn.Identity()
        self.adapter = nn.Identity()
        self.freeze_encoder()

    @property
    def num_tokens(self) -> int:
        return self.tokens

    def load(self, source) -> Media:
        array = np.load(io.BytesIO(read_bytes(source)))
        data = torch.from_numpy(array)
        size = (array.shape[-1], array.shape[-2]) if array.ndim >= 2 else None
        return Media(data=data, source=source_name(source), size=size, duration=float(array.shape[0]))

    def transform(self, media: Media, train: bool) -> torch.Tensor:
        x = media.data.float().flatten()[:WIDTH]
        x = torch.nn.functional.pad(x, (0, WIDTH - x.numel()))
        return x + 1.0 if train else x


class FakeImage(FakeModality):
    name = "image"
    record_key = "image"
    placeholder = "<image>"
    token_prefix = "im"
    tokens = 4


class FakeVideo(FakeModality):
    name = "video"
    record_key = "video"
    placeholder = "<video>"
    token_prefix = "vi"
    tokens = 3


class FakeAudio(FakeModality):
    name = "audio"
    record_key = "sound"
    placeholder = "<sound>"
    aliases = ("<audio>",)
    token_prefix = "so"
    tokens = 2


def all_fakes() -> dict[str, FakeModality]:
    return {m.name: m for m in (FakeImage(), FakeVideo(), FakeAudio())}


def write_npy(url: str, array: np.ndarray) -> str:
    """Write ``array`` as .npy to a local path or fsspec URL; returns the URL."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    with fsspec.open(url, "wb") as f:
        f.write(buffer.getvalue())
    return url
