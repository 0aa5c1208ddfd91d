"""Kosmos-2 location tokens: ``<object><patch_index_0044><patch_index_0863></object>``.

The unpadded image is cut into a 32 x 32 grid; ``<patch_index_XXXX>`` names cell
``row * 32 + col`` (four digits). A box is the pair (cell of its top-left corner, cell of
its bottom-right corner). Facts checked against transformers' ``Kosmos2Processor``:

- writing: ``col1 = floor(x1 * 32)`` and ``col2 = ceil(x2 * 32 - 1)`` on 0-1 fractions (the
  bottom-right cell is the last one the box covers), likewise for rows;
- reading: cell centres, except when the two cells share a row or a column (a box one cell
  thick), where the box spans the full cells so that it keeps a non-zero area.

So a round trip is within half a cell, or one cell for a one-cell-thick box. Several boxes
of one phrase are joined by ``</delimiter_of_multi_objects/>`` inside one ``<object>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from gptground.grounding.notation import BoxNotation
from gptground.grounding.padding import UnitBox, from_unit, to_unit
from gptground.grounding.reading import Cursor, RawGroup, RawValue, ReadError
from gptground.grounding.result import Flag
from gptground.grounding.types import Box

GROUNDING_PROMPT = "<grounding>"
"""Token that asks Kosmos-2 to ground its answer; parsing ignores it."""
MULTI_OBJECT_DELIMITER = "</delimiter_of_multi_objects/>"

_OPEN = re.compile(r"<object>")
_PATCH = re.compile(r"[ \t]{0,2}<patch_index_(\d{1,6})>")
_DELIMITER = re.compile(r"[ \t]{0,2}" + re.escape(MULTI_OBJECT_DELIMITER))
_CLOSE = re.compile(r"[ \t]{0,2}</object>")


def patch_indices(unit: UnitBox, grid: int = 32) -> tuple[int, int]:
    """Cells ``(top_left, bottom_right)`` of a box given as 0-1 fractions of the image."""
    x1, y1, x2, y2 = unit
    col1, row1 = _cell(math.floor(x1 * grid), grid), _cell(math.floor(y1 * grid), grid)
    # A zero-width box on a cell border would get its end cell before its start cell.
    col2 = max(_cell(math.ceil(x2 * grid - 1), grid), col1)
    row2 = max(_cell(math.ceil(y2 * grid - 1), grid), row1)
    return row1 * grid + col1, row2 * grid + col2


def patch_box(top_left: int, bottom_right: int, grid: int = 32) -> UnitBox:
    """0-1 box of a cell pair: centres, or full cells when they share a row or column."""
    row1, col1 = divmod(top_left, grid)
    row2, col2 = divmod(bottom_right, grid)
    if row1 == row2 or col1 == col2:
        return col1 / grid, row1 / grid, (col2 + 1) / grid, (row2 + 1) / grid
    return (col1 + 0.5) / grid, (row1 + 0.5) / grid, (col2 + 0.5) / grid, (row2 + 0.5) / grid


def _cell(index: int, grid: int) -> int:
    """A row or column index kept on the grid (fraction 1.0 would give ``grid``)."""
    return min(max(index, 0), grid - 1)


class Kosmos2BoxNotation(BoxNotation):
    """``<object>`` + cell-pair tokens + ``</object>``, on an unpadded ``grid x grid`` grid."""

    label = "<object><patch_index_XXXX><patch_index_XXXX></object>"
    opener = r"<object>"

    def __init__(self, grid: int = 32) -> None:
        self.grid = grid

    def write(self, boxes: Sequence[Box], image_size: tuple[float, float]) -> str:
        pairs = (patch_indices(to_unit(box, image_size), self.grid) for box in boxes)
        tokens = (f"<patch_index_{a:04d}><patch_index_{b:04d}>" for a, b in pairs)
        return "<object>" + MULTI_OBJECT_DELIMITER.join(tokens) + "</object>"

    def read_group(self, text: str, pos: int) -> RawGroup:
        cursor = Cursor(text, pos, "<object>")
        cursor.expect(_OPEN, "'<object>'")
        values = [self._read_pair(cursor)]
        while cursor.accept(_DELIMITER):
            values.append(self._read_pair(cursor))
        cursor.expect(_CLOSE, "'</object>'", shape="</object>")
        if len(values) == 1:  # a lone box owns its <object> tags
            values = [RawValue(values[0].numbers, pos, cursor.pos)]
        return RawGroup(tuple(values), pos, cursor.pos)

    @staticmethod
    def _read_pair(cursor: Cursor) -> RawValue:
        start = cursor.pos
        shape = "<patch_index_DDDD>"
        first = cursor.expect(_PATCH, "<patch_index_XXXX>", shape)
        second = cursor.expect(_PATCH, "a second <patch_index_XXXX>", shape)
        return RawValue((float(first.group(1)), float(second.group(1))), start, cursor.pos)

    def to_box(self, raw: RawValue, image_size: tuple[float, float]) -> tuple[Box, frozenset[Flag]]:
        cells = self.grid * self.grid
        top_left, bottom_right = (int(v) for v in raw.numbers)
        if not (top_left < cells and bottom_right < cells):
            raise ReadError(raw.start, f"patch index outside 0-{cells - 1}: {top_left}, {bottom_right}")
        row1, col1 = divmod(top_left, self.grid)
        row2, col2 = divmod(bottom_right, self.grid)
        flags = frozenset({Flag.SWAPPED}) if (col2 < col1 or row2 < row1) else frozenset()
        top_left = min(row1, row2) * self.grid + min(col1, col2)
        bottom_right = max(row1, row2) * self.grid + max(col1, col2)
        return from_unit(patch_box(top_left, bottom_right, self.grid), image_size), flags
