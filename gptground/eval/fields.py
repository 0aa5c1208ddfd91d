"""Typed access to the fields of annotation and prediction records, with located errors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gptground.eval.errors import EvalInputError
from gptground.grounding.types import Box


@dataclass(frozen=True)
class Where:
    """Where a record sits, to name it in errors."""

    path: str
    line: int | None = None
    """1-based line, for line-based files."""
    record: int | str | None = None
    """Index or key inside a JSON document."""

    def error(self, message: str) -> EvalInputError:
        """An :class:`EvalInputError` at this location (to be raised by the caller)."""
        return EvalInputError(self.path, message, line=self.line, record=self.record)


def require(record: Any, key: str, where: Where) -> Any:
    """``record[key]``; the record must be a JSON object that has the key."""
    if not isinstance(record, Mapping):
        raise where.error(f"expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise where.error(f"missing key {key!r}")
    return record[key]


def text(record: Any, key: str, where: Where) -> str:
    """A string field."""
    value = require(record, key, where)
    if not isinstance(value, str):
        raise where.error(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def number(value: Any, what: str, where: Where, *, positive: bool = False) -> float:
    """A finite JSON number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise where.error(
            f"{what} must be a {'positive ' if positive else ''}finite number, got {value!r}"
        )
    return float(value)


def numbers(value: Any, length: int, what: str, where: Where) -> list[float]:
    """A list of exactly ``length`` finite numbers."""
    if not isinstance(value, list) or len(value) != length:
        raise where.error(f"{what} must be a list of {length} numbers, got {value!r}")
    return [number(item, what, where) for item in value]


def box_xyxy(value: Any, what: str, where: Where) -> Box:
    """A box stored as ``[x1, y1, x2, y2]`` pixels."""
    return Box(*numbers(value, 4, what, where))


def box_xywh(value: Any, what: str, where: Where) -> Box:
    """A box stored COCO-style as ``[x, y, width, height]`` pixels."""
    x, y, width, height = numbers(value, 4, what, where)
    if width < 0 or height < 0:
        raise where.error(f"{what} has a negative width or height: {value!r}")
    return Box(x, y, x + width, y + height)


def image_size(width: Any, height: Any, where: Where) -> tuple[int, int]:
    """``(width, height)`` in whole pixels, both positive."""
    size = (
        number(width, "width", where, positive=True),
        number(height, "height", where, positive=True),
    )
    if any(side != int(side) for side in size):
        raise where.error(f"image size must be whole pixels, got {size!r}")
    return int(size[0]), int(size[1])
