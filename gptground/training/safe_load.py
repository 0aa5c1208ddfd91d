"""Checkpoints are read as data only: tensors and plain containers, never pickled code.

A ``.ckpt`` is a pickle, and unpickling may call any Python function the file names. Every
checkpoint this package reads goes through ``torch.load(weights_only=True)``, passed
explicitly: torch lets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turn the safe mode off only
where the caller left ``weights_only`` unset (torch >= 2.6), so an explicit True holds
whatever the environment says. A checkpoint that needs more than that is refused with
the global it asked for.

Remote checkpoints (``scheme://...``) are read the same way: ``http(s)://`` into memory
(not through torch.hub, which would load it with ``weights_only=False`` by default and
cache it by file name, so a second ``.../last.ckpt`` would silently reuse the first),
every other scheme through fsspec as Lightning opens it.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import urllib.request
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem

FORCE_UNSAFE_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"  # torch's switch that we never honour
_GLOBAL = re.compile(r"(?:GLOBAL|global)\s+([\w.]+)")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds more than tensors and plain containers (it would run code to load)."""


def load_weights_only(path: str | os.PathLike | io.IOBase, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` for a local path, an open file or a URL.

    Raises:
        UnsafeCheckpointError: the file asks for a Python global that is not plain data;
            the message names the file and that global.
    """
    where = path if isinstance(path, (str, os.PathLike)) else getattr(path, "name", "a checkpoint stream")
    try:
        return torch.load(_open(path), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(refusal(where, e)) from None


def check_weights_only(path: str | os.PathLike) -> None:
    """Refuse a local checkpoint file whose pickle names any global that ``weights_only``
    loading would not allow, without loading its tensors (for loaders that unpickle by
    themselves, such as Lightning's lazy FSDP loader).

    Raises:
        UnsafeCheckpointError: the file names such globals (listed in the message).
    """
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(os.fspath(path))
    if unsafe:
        raise UnsafeCheckpointError(refusal(path, f"GLOBAL {unsafe[0]}") + f" (all it asks for: {unsafe})")


def refusal(where, error: BaseException | str) -> str:
    """The message for a checkpoint that ``weights_only`` loading rejected."""
    found = _GLOBAL.search(str(error))
    wanted = f"the Python global {found.group(1)!r}" if found else "a Python object that is not plain data"
    return (
        f"refusing to load checkpoint {os.fspath(where) if isinstance(where, os.PathLike) else where}: "
        f"it asks for {wanted}, and loading it would run code from the file. gptground checkpoints hold "
        "only tensors and plain containers (read with torch.load(weights_only=True), whatever "
        f"{FORCE_UNSAFE_ENV} says); this one was not written by gptground or was tampered with"
    )


def _open(path):
    """A readable binary file object for ``path`` (local, ``http(s)://`` or any fsspec URL)."""
    if not isinstance(path, (str, os.PathLike)):
        return path
    path = os.fspath(path)
    if path.startswith(("http://", "https://")):
        with urllib.request.urlopen(path) as response:  # noqa: S310 (the scheme is checked above)
            return io.BytesIO(response.read())
    if "://" in path:
        with get_filesystem(path).open(path, "rb") as f:
            return io.BytesIO(f.read())
    return path
