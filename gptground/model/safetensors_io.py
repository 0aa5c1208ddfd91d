"""Stream tensors to and from safetensors files without a second copy of the weights in memory.

safetensors' own ``save_file`` builds every tensor's bytes in memory before writing, and
``load_file``/``safe_open`` either allocate a fresh tensor per entry or map the file (whose
resident pages count in the process's RSS). Here:

* ``write_weights`` writes the header, then each tensor's bytes straight from its storage
  (a non-contiguous tensor is made contiguous on its own, one at a time). Tensors that share
  storage (tied weights) are simply written twice: no clone, no refusal.
* ``read_weights_into`` reads each entry with plain ``readinto`` calls into the destination
  tensor's memory (same dtype), or through one temporary of that entry (another dtype).
* Folders hold one ``model.safetensors`` or, above ``MAX_SHARD_BYTES``, Hugging Face style
  shards ``model-0000i-of-0000n.safetensors`` plus ``model.safetensors.index.json``; both
  layouts are read.

File format (the safetensors spec): an 8-byte little-endian header length N, N bytes of JSON
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`` with
offsets relative to the first byte after the header, then the data.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Mapping

import torch

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MAX_SHARD_BYTES = 4 * 1024**3  # HF-style shards above this many bytes per file
_ALIGN = 8  # header padded so every tensor starts 8-byte aligned (entries sorted by item size)

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class WeightsFormatError(ValueError):
    """A weights file or folder that cannot be read, or that does not fit the model."""


# --- writing ----------------------------------------------------------------------------------
def write_weights(state: Mapping[str, torch.Tensor], folder: str, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[str]:
    """Write ``state`` into ``folder`` as one file or as shards + index; returns the file names."""
    shards = _plan_shards(state, max_shard_bytes)
    if len(shards) == 1:
        write_file(state, os.path.join(folder, SINGLE_FILE))
        return [SINGLE_FILE]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for name, keys in zip(names, shards):
        write_file({k: state[k] for k in keys}, os.path.join(folder, name))
        weight_map.update({k: name for k in keys})
    total = sum(_nbytes(t) for t in state.values())
    with open(os.path.join(folder, INDEX_FILE), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return [*names, INDEX_FILE]


def _plan_shards(state: Mapping[str, torch.Tensor], max_shard_bytes: int) -> list[list[str]]:
    """Keys in state order, cut into runs of at most ``max_shard_bytes`` (a bigger tensor alone)."""
    shards: list[list[str]] = [[]]
    size = 0
    for key, tensor in state.items():
        n = _nbytes(tensor)
        if shards[-1] and size + n > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += n
    return shards


def write_file(state: Mapping[str, torch.Tensor], path: str, metadata: Mapping[str, str] | None = None) -> None:
    """One safetensors file, tensor by tensor, readable by ``safetensors.safe_open``."""
    # Larger items first, then by name: each offset is a multiple of the item size after it.
    order = sorted(state, key=lambda k: (-state[k].element_size(), k))
    header: dict = {"__metadata__": {"format": "pt", **(metadata or {})}}
    offset = 0
    for key in order:
        t = state[key]
        if t.dtype not in _NAMES:
            raise WeightsFormatError(f"{path}: tensor {key!r} has dtype {t.dtype}, which safetensors cannot store")
        header[key] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + _nbytes(t)]}
        offset += _nbytes(t)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % _ALIGN)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for key in order:
            f.write(_bytes_of(state[key]))


def _bytes_of(t: torch.Tensor) -> memoryview:
    """A view of the tensor's bytes; a copy only of a tensor that is not contiguous on the CPU."""
    t = t.detach()
    if t.device.type != "cpu" or not t.is_contiguous():
        t = t.to("cpu").contiguous()
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


# --- reading ----------------------------------------------------------------------------------
def weight_files(folder: str) -> list[str]:
    """The safetensors files of a folder (shards in index order, or the single file); [] if none."""
    index = os.path.join(folder, INDEX_FILE)
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return [os.path.join(folder, name) for name in dict.fromkeys(weight_map.values())]
    single = os.path.join(folder, SINGLE_FILE)
    return [single] if os.path.isfile(single) else []


def read_header(path: str) -> tuple[dict, int]:
    """(entries without ``__metadata__``, byte offset of the data) of one safetensors file."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsFormatError(f"{path}: not a safetensors file (shorter than its header length)")
        (n,) = struct.unpack("<Q", head)
        if n > os.path.getsize(path) - 8:
            raise WeightsFormatError(f"{path}: not a safetensors file (header length {n} beyond the file)")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise WeightsFormatError(f"{path}: not a safetensors file ({e})") from e
    header.pop("__metadata__", None)
    return header, 8 + n


def read_weights_into(files: Iterable[str], destinations: Mapping[str, torch.Tensor]) -> set[str]:
    """Fill ``destinations`` (name -> CPU tensor) from the files; returns the names the files hold.

    Entries the destinations lack are skipped (the caller decides whether that is an error);
    a shape mismatch raises ``WeightsFormatError`` naming the file and the entry.
    """
    found: set[str] = set()
    for path in files:
        header, data_start = read_header(path)
        with open(path, "rb", buffering=0) as f:
            for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
                found.add(name)
                if name in destinations:
                    _read_entry(f, path, name, entry, data_start, destinations[name])
    return found


def _read_entry(f, path: str, name: str, entry: dict, data_start: int, dest: torch.Tensor) -> None:
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
        raise WeightsFormatError(f"{path}: entry {name!r} has unknown dtype {entry['dtype']}")
    if tuple(entry["shape"]) != tuple(dest.shape):
        raise WeightsFormatError(f"{path}: entry {name!r} has shape {tuple(entry['shape'])}, the model {tuple(dest.shape)}")
    begin, end = entry["data_offsets"]
    dest = dest.detach()
    # Same dtype: straight into the destination's memory; else via one temporary of this entry.
    direct = dtype == dest.dtype and dest.is_contiguous() and dest.device.type == "cpu"
    target = dest if direct else torch.empty(tuple(entry["shape"]), dtype=dtype)
    if target.numel() * target.element_size() != end - begin:
        raise WeightsFormatError(f"{path}: entry {name!r} holds {end - begin} bytes, not {target.numel()} x {dtype}")
    buffer = memoryview(target.reshape(-1).view(torch.uint8).numpy())
    f.seek(data_start + begin)
    done = 0
    while done < len(buffer):  # a single read() returns at most ~2 GiB on Linux
        n = f.readinto(buffer[done:])
        if not n:
            raise WeightsFormatError(f"{path}: file ends inside entry {name!r}")
        done += n
    if not direct:
        dest.copy_(target)
