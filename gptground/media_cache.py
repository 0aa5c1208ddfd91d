"""A small LRU of encoded media, so many questions about one file encode it once.

An entry holds the decoded media (the processor reads sizes and times from it, and it is
not decoded again) and the modality's decoder tokens (the frozen encoder and the adapter
do not run again). Entries are keyed by modality and file identity: a local file's
absolute path, size and modification time, so an edited file is encoded afresh.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from gptground.processor import MediaMeta
from modalities import Media


@dataclass(frozen=True)
class EncodedMedia:
    """One media file, decoded and turned into decoder tokens.

    Attributes:
        modality: the modality name ("image", "video", "audio").
        media: the decoded, untransformed media.
        tokens: (N, d_model) decoder tokens, on the model's device and dtype.
    """

    modality: str
    media: Media
    tokens: torch.Tensor

    @property
    def meta(self) -> MediaMeta:
        """Size, duration and sample times of the media."""
        return MediaMeta.of(self.media)


def file_key(modality: str, source: str | os.PathLike) -> Hashable:
    """The cache key of a media file: (modality, path[, size, mtime]) for local files."""
    path = os.fspath(source)
    if "://" in path and not path.startswith("file://"):
        return modality, path  # remote: the URL names it
    local = os.path.abspath(path.removeprefix("file://"))
    try:
        stat = os.stat(local)
    except OSError:
        return modality, local  # missing: loading it raises the typed error
    return modality, local, stat.st_size, stat.st_mtime_ns


class MediaCache:
    """Least-recently-used store of ``EncodedMedia``.

    Args:
        capacity: how many entries to keep; decoded videos are large, so keep it small.
            0 disables caching.
    """

    def __init__(self, capacity: int = 4):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, EncodedMedia] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, make: Callable[[], EncodedMedia]) -> EncodedMedia:
        """The entry for ``key``, made by ``make()`` (and stored) when absent."""
        if key in self._entries:
            self.hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self.misses += 1
        entry = make()
        if self.capacity:
            self._entries[key] = entry
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return entry

    def clear(self) -> None:
        """Drop every entry (e.g. to free memory)."""
        self._entries.clear()
