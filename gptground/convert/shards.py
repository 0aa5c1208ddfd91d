"""A Hugging Face checkpoint's weight shards, read one shard at a time.

Layouts: ``pytorch_model.bin`` or ``pytorch_model-0000k-of-0000n.bin`` shards with
``pytorch_model.bin.index.json`` (what GroundingGPT-7B is published as), and the same with
``.safetensors``. Pickled shards are read with ``torch.load(weights_only=True, mmap=True)``:
tensors only (no pickled code runs), and memory-mapped, so a shard's tensors are file pages
read on access, not a private copy. Only one shard is open at any time; the caller copies
what it needs out of it and lets it go before the next one is opened.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from safetensors import SafetensorError, safe_open

from gptground.convert.errors import ConversionError

INDEXES = ("pytorch_model.bin.index.json", "model.safetensors.index.json")
SINGLE_FILES = ("pytorch_model.bin", "model.safetensors")


@dataclass(frozen=True)
class TensorInfo:
    """Where one checkpoint tensor is and what it is, without its values."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    file: str  # the shard's path


def shard_files(folder: str) -> list[str]:
    """The folder's weight files: the shards its index names (in index order), or its one file.

    Raises:
        ConversionError: no weights, or an index naming a shard that is not there.
    """
    for index in INDEXES:
        path = os.path.join(folder, index)
        if os.path.isfile(path):
            with open(path) as f:
                weight_map = json.load(f).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ConversionError(f"{path}: no weight_map")
            files = [os.path.join(folder, name) for name in dict.fromkeys(weight_map.values())]
            absent = [os.path.basename(f) for f in files if not os.path.isfile(f)]
            if absent:
                raise ConversionError(f"{path} names shards that are not in {folder}: {absent}")
            return files
    for name in SINGLE_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            return [os.path.join(folder, name)]
    raise ConversionError(f"{folder}: no weights ({', '.join(INDEXES + SINGLE_FILES)})")


def index_weight_map(folder: str) -> dict[str, str] | None:
    """key -> shard file name from the folder's index; None without an index."""
    for index in INDEXES:
        path = os.path.join(folder, index)
        if os.path.isfile(path):
            with open(path) as f:
                return dict(json.load(f)["weight_map"])
    return None


def load_shard(path: str) -> dict[str, torch.Tensor]:
    """One pickled shard as a memory-mapped state dict (tensors only)."""
    try:
        # mmap needs the zip format of torch >= 1.6, which every HF shard has; an old-format
        # file is read whole (still one shard).
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise ConversionError(f"{path}: cannot be read as plain tensors with torch.load(weights_only=True): {e}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: not a state dict of tensors")
    return state


def iter_tensors(path: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, tensor) of one shard; the shard is released when the iteration ends."""
    if path.endswith(".safetensors"):
        try:
            with safe_open(path, framework="pt", device="cpu") as f:
                for key in f.keys():
                    yield key, f.get_tensor(key)  # one tensor at a time
        except SafetensorError as e:
            raise ConversionError(f"{path}: not a readable safetensors file: {e}") from e
        return
    state = load_shard(path)
    try:
        yield from state.items()
    finally:
        del state


def read_layout(folder: str, files: list[str]) -> dict[str, TensorInfo]:
    """key -> TensorInfo of every tensor in ``files``, reading each shard's layout once.

    Raises:
        ConversionError: a key in two shards, or keys the index and the shards disagree on.
    """
    layout: dict[str, TensorInfo] = {}
    for path in files:
        for key, shape, dtype in _shard_layout(path):
            if key in layout:
                raise ConversionError(f"{key!r} is in two shards: {layout[key].file} and {path}")
            layout[key] = TensorInfo(shape, dtype, path)
    weight_map = index_weight_map(folder)
    if weight_map is not None:
        in_index_only = sorted(set(weight_map) - set(layout))
        misplaced = sorted(k for k, info in layout.items() if weight_map.get(k) != os.path.basename(info.file))
        if in_index_only or misplaced:
            raise ConversionError(
                f"{folder}: the index and the shards disagree: {len(in_index_only)} keys in the index only "
                f"{in_index_only[:5]}, {len(misplaced)} keys in another shard than the index says {misplaced[:5]}"
            )
    return layout


def _shard_layout(path: str) -> Iterator[tuple[str, tuple[int, ...], torch.dtype]]:
    if path.endswith(".safetensors"):
        try:
            with safe_open(path, framework="pt", device="cpu") as f:
                for key in f.keys():
                    s = f.get_slice(key)
                    yield key, tuple(s.get_shape()), _SAFE_DTYPES.get(s.get_dtype(), torch.float32)
        except SafetensorError as e:
            raise ConversionError(f"{path}: not a readable safetensors file: {e}") from e
        return
    state = load_shard(path)  # memory-mapped: reading shapes touches no tensor data
    items = [(k, tuple(v.shape), v.dtype) for k, v in state.items()]
    del state
    yield from items


_SAFE_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool, "U8": torch.uint8}
