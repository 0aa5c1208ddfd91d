"""Reading a predictions JSONL file: one model answer and its ground truth per line.

Line schema::

    {"id": "...", "prediction": "<raw answer text>", "answer": [[...], ...],
     "image_size": [width, height]   # task "rec": answer holds [x1, y1, x2, y2] pixels
     "duration": seconds             # task "tvg": answer holds [start, end] seconds
     "format": "groundinggpt"}       # optional: the grounding format of "prediction"
     "error": "..."}                 # optional: the item's media failed to load (a wrong
                                     # answer; image_size or duration may then be null)

Every line is checked; the first bad one raises :class:`EvalInputError` with file and line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gptground.eval.errors import EvalInputError
from gptground.eval.fields import Where, number, numbers, require, text
from gptground.eval.files import PathLike, iter_jsonl
from gptground.grounding.types import Box, Span

TASKS = ("rec", "tvg")
"""Referring expression comprehension (boxes) and temporal video grounding (spans)."""


@dataclass(frozen=True)
class BoxPrediction:
    """A REC answer with its ground-truth boxes (pixels)."""

    id: str
    text: str
    truths: tuple[Box, ...]
    image_size: tuple[float, float] | None
    """(width, height) of the original image, pixels; None only on a line with an error."""
    format: str | None
    line: int
    error: str | None = None
    """Why the item was not answered (its media failed to load)."""


@dataclass(frozen=True)
class SpanPrediction:
    """A temporal grounding answer with its ground-truth windows (seconds)."""

    id: str
    text: str
    truths: tuple[Span, ...]
    duration: float | None
    """Clip length in seconds; None only on a line with an error."""
    format: str | None
    line: int
    error: str | None = None
    """Why the item was not answered (its media failed to load)."""


P = TypeVar("P", BoxPrediction, SpanPrediction)


def read_box_predictions(path: PathLike) -> list[BoxPrediction]:
    """Read and check every line of a ``rec`` predictions file.

    Raises:
        EvalInputError: A bad line (invalid JSON, missing key, wrong type, duplicate id),
            or a file with no predictions.
    """
    return _read(path, _read_box_line)


def read_span_predictions(path: PathLike) -> list[SpanPrediction]:
    """Read and check every line of a ``tvg`` predictions file.

    Raises:
        EvalInputError: As :func:`read_box_predictions`.
    """
    return _read(path, _read_span_line)


def _read(path: PathLike, read_line: Callable[[dict[str, Any], Where], P]) -> list[P]:
    records: list[P] = []
    first_line: dict[str, int] = {}
    for line, raw in iter_jsonl(path):
        where = Where(os.fspath(path), line=line)
        record = read_line(raw, where)
        if record.id in first_line:
            raise where.error(f"duplicate id {record.id!r} (first on line {first_line[record.id]})")
        first_line[record.id] = line
        records.append(record)
    if not records:
        raise EvalInputError(path, "the file holds no predictions")
    return records


def _read_box_line(raw: dict[str, Any], where: Where) -> BoxPrediction:
    error = _error(raw, where)
    if error is not None and raw.get("image_size") is None:
        size = None
    else:
        size = numbers(require(raw, "image_size", where), 2, "image_size [width, height]", where)
        if min(size) <= 0:
            raise where.error(f"image_size must be positive, got {size!r}")
    truths = tuple(
        Box(*numbers(v, 4, "an answer box [x1, y1, x2, y2]", where)) for v in _answer(raw, where)
    )
    return BoxPrediction(
        _id(raw, where),
        text(raw, "prediction", where),
        truths,
        None if size is None else (size[0], size[1]),
        _format(raw, where),
        where.line,
        error,
    )


def _read_span_line(raw: dict[str, Any], where: Where) -> SpanPrediction:
    error = _error(raw, where)
    if error is not None and raw.get("duration") is None:
        duration = None
    else:
        duration = number(require(raw, "duration", where), "duration", where, positive=True)
    truths = tuple(
        Span(*numbers(v, 2, "an answer span [start, end]", where)) for v in _answer(raw, where)
    )
    return SpanPrediction(
        _id(raw, where),
        text(raw, "prediction", where),
        truths,
        duration,
        _format(raw, where),
        where.line,
        error,
    )


def _answer(raw: dict[str, Any], where: Where) -> list[Any]:
    answer = require(raw, "answer", where)
    if not isinstance(answer, list) or not answer:
        raise where.error(f"'answer' must be a non-empty list of boxes or spans, got {answer!r}")
    return answer


def _id(raw: dict[str, Any], where: Where) -> str:
    value = require(raw, "id", where)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise where.error(f"'id' must be a string or an integer, got {value!r}")
    return str(value)


def _format(raw: dict[str, Any], where: Where) -> str | None:
    value = raw.get("format")
    if value is not None and not isinstance(value, str):
        raise where.error(f"'format' must be a format name, got {value!r}")
    return value


def _error(raw: dict[str, Any], where: Where) -> str | None:
    value = raw.get("error")
    if value is not None and (not isinstance(value, str) or not value):
        raise where.error(f"'error' must be a non-empty message, got {value!r}")
    return value
