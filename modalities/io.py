"""Opening media from local paths, fsspec URLs (``memory://``, ``s3://``...) or file objects."""

from __future__ import annotations

import io
import os
from typing import IO

import fsspec

from modalities.errors import CorruptMediaError, MediaNotFoundError

MediaSource = str | os.PathLike | IO[bytes]


def source_name(source: MediaSource) -> str:
    """A printable name for error messages: the path, URL or the file object's name."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", f"<{type(source).__name__}>"))


def read_bytes(source: MediaSource) -> bytes:
    """All bytes of a media source. Raises MediaNotFoundError / CorruptMediaError (empty)."""
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            with fsspec.open(os.fspath(source), "rb") as f:
                data = f.read()
        except FileNotFoundError as e:
            raise MediaNotFoundError(name, "no such file") from e
        except IsADirectoryError as e:
            raise MediaNotFoundError(name, "is a directory, not a media file") from e
    else:
        data = source.read()
    if not data:
        raise CorruptMediaError(name, "file is empty (0 bytes)")
    return data


def open_buffer(source: MediaSource) -> tuple[io.BytesIO, str]:
    """(in-memory binary buffer, printable name) for decoders that want a seekable file."""
    return io.BytesIO(read_bytes(source)), source_name(source)


def local_path(source: MediaSource) -> str | None:
    """The local filesystem path of a source, or None if it is remote or a file object.

    Decoders such as decord are fastest on a real path; they fall back to a buffer otherwise.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.startswith("file://"):
            path = path[len("file://") :]
        if "://" not in path:
            if not os.path.exists(path):
                raise MediaNotFoundError(path, "no such file")
            return path
    return None
