"""Reading evaluation files (local paths or fsspec URLs) with located errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import fsspec

from gptground.eval.errors import EvalInputError

PathLike = str | os.PathLike[str]


def read_text(path: PathLike) -> str:
    """The whole file as UTF-8 text; ``path`` may be any fsspec URL (s3://, memory://)."""
    with fsspec.open(os.fspath(path), "r", encoding="utf-8") as handle:
        return handle.read()


def load_json(path: PathLike) -> Any:
    """Parse a JSON document.

    Raises:
        EvalInputError: The file is not valid JSON (names the line of the fault).
    """
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise EvalInputError(path, f"invalid JSON: {error.msg}", line=error.lineno) from error


def iter_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line number from 1, stripped text)`` for every non-blank line."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def iter_jsonl(path: PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for every non-blank line of a JSONL file.

    Raises:
        EvalInputError: A line is not valid JSON or not a JSON object.
    """
    for number, line in iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvalInputError(path, f"invalid JSON: {error.msg}", line=number) from error
        if not isinstance(record, dict):
            raise EvalInputError(
                path, f"expected a JSON object, got {type(record).__name__}", line=number
            )
        yield number, record


def join_path(root: PathLike, *parts: str) -> str:
    """Join with ``/`` so that local folders and URLs (s3://bucket/dir) both work."""
    return "/".join([os.fspath(root).rstrip("/"), *parts])
