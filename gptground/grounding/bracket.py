"""Boxes as bracketed number lists: ``[x1, y1, x2, y2]`` (GroundingGPT, Shikra, Ferret).

The systems differ in the numbers (3-decimal fractions of the padded square for GroundingGPT
and Shikra, integers 0-999 of the unpadded image for Ferret), in spacing, and in how several
boxes of one phrase are joined: GroundingGPT ``[..][..]``, Ferret ``[..], [..]``, Shikra
``[..;..]``. Reading accepts every spacing and both joinings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gptground.grounding.quantize import Quantizer
from gptground.grounding.reading import NUMBER_AHEAD, Cursor, RawGroup, RawValue
from gptground.grounding.types import Box
from gptground.grounding.unit_boxes import UnitBoxNotation

_OPEN = re.compile(r"\[[ \t]{0,3}")
_ITEM_SEP = re.compile(r"[ \t]{0,3},[ \t]{0,3}")
_BOX_SEP = re.compile(r"[ \t]{0,3};[ \t]{0,3}")
_CLOSE = re.compile(r"[ \t]{0,3}\]")


class BracketBoxNotation(UnitBoxNotation):
    """``[x1, y1, x2, y2]`` boxes.

    Args:
        quantizer: decimals or integer bins.
        padded: fractions of the padded square rather than of ``W`` and ``H``.
        item_separator: written between the four numbers (``", "`` or ``","``).
        between_boxes: written between the boxes of one phrase.
        one_bracket: put all boxes of a phrase in one bracket, ``between_boxes`` apart
            (Shikra's ``[..;..]``), instead of one bracket each.
    """

    label = "[x1, y1, x2, y2]"
    opener = r"\[[ \t]{0,3}" + NUMBER_AHEAD

    def __init__(
        self,
        quantizer: Quantizer,
        padded: bool,
        item_separator: str = ", ",
        between_boxes: str = "",
        one_bracket: bool = False,
    ) -> None:
        super().__init__(quantizer, padded)
        self.item_separator = item_separator
        self.between_boxes = between_boxes
        self.one_bracket = one_bracket

    def write(self, boxes: Sequence[Box], image_size: tuple[float, float]) -> str:
        items = [self.item_separator.join(self.encode(box, image_size)) for box in boxes]
        if self.one_bracket:
            return "[" + self.between_boxes.join(items) + "]"
        return self.between_boxes.join(f"[{item}]" for item in items)

    def read_group(self, text: str, pos: int) -> RawGroup:
        cursor = Cursor(text, pos, self.label)
        cursor.expect(_OPEN, "'['")
        values = [self._read_box(cursor)]
        while cursor.accept(_BOX_SEP):
            values.append(self._read_box(cursor))
        cursor.expect(_CLOSE, "']' after four numbers")
        if len(values) == 1:  # a lone box owns its brackets
            values = [RawValue(values[0].numbers, pos, cursor.pos)]
        return RawGroup(tuple(values), pos, cursor.pos)

    @staticmethod
    def _read_box(cursor: Cursor) -> RawValue:
        start = cursor.pos
        numbers = [cursor.number()]
        for _ in range(3):
            cursor.expect(_ITEM_SEP, f"',' after number {len(numbers)} of 4")
            numbers.append(cursor.number())
        return RawValue(tuple(numbers), start, cursor.pos)
