"""MiniGPT-v2: ``<p>phrase</p> {<x1><y1><x2><y2>}`` and task identifiers.

Coordinates are integers 0-100 of the unpadded width and height: the reference data code
writes ``int(x / W * 100)``, so ``x == W`` gives 100. Several boxes of one phrase are
joined by ``<delim>``. A prompt starts with a task identifier such as ``[grounding]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gptground.grounding.quantize import BinQuantizer
from gptground.grounding.reading import Cursor, RawGroup, RawValue
from gptground.grounding.types import Box
from gptground.grounding.unit_boxes import UnitBoxNotation

TASK_IDENTIFIERS = ("vqa", "caption", "grounding", "refer", "detection", "identify")
"""MiniGPT-v2's task identifiers, written ``[grounding]`` at the start of the instruction."""
BOX_DELIMITER = "<delim>"

_TASK_PREFIX = re.compile(r"\s{0,8}\[(" + "|".join(TASK_IDENTIFIERS) + r")\][ \t]{0,8}")
_OPEN = re.compile(r"\{[ \t]{0,2}")
_COORD_OPEN = re.compile(r"[ \t]{0,2}<[ \t]{0,2}")
_COORD_CLOSE = re.compile(r"[ \t]{0,2}>")
_CLOSE = re.compile(r"[ \t]{0,2}\}")


class MiniGPTv2BoxNotation(UnitBoxNotation):
    """``{<x1><y1><x2><y2>}`` boxes, 0-100 of the unpadded image, ``<delim>`` between."""

    label = "{<x1><y1><x2><y2>}"
    opener = r"\{[ \t]{0,2}<"

    def __init__(self) -> None:
        super().__init__(BinQuantizer(bins=100, max_index=100), padded=False)

    def write(self, boxes: Sequence[Box], image_size: tuple[float, float]) -> str:
        groups = ("{" + "".join(f"<{n}>" for n in self.encode(box, image_size)) + "}" for box in boxes)
        return BOX_DELIMITER.join(groups)

    def read_group(self, text: str, pos: int) -> RawGroup:
        cursor = Cursor(text, pos, self.label)
        cursor.expect(_OPEN, "'{'")
        numbers = []
        for index in range(4):
            cursor.expect(_COORD_OPEN, f"'<' before number {index + 1} of 4")
            numbers.append(cursor.number())
            cursor.expect(_COORD_CLOSE, "'>'")
        cursor.expect(_CLOSE, "'}' after four numbers")
        return RawGroup((RawValue(tuple(numbers), pos, cursor.pos),), pos, cursor.pos)


def add_task_identifier(text: str, task: str) -> str:
    """Prefix an instruction with a MiniGPT-v2 task identifier: ``"[refer] " + text``.

    Raises:
        ValueError: if ``task`` is not one of ``TASK_IDENTIFIERS``.
    """
    if task not in TASK_IDENTIFIERS:
        raise ValueError(f"unknown MiniGPT-v2 task {task!r}; expected one of {TASK_IDENTIFIERS}")
    return f"[{task}] {text}"


def strip_task_identifier(text: str) -> tuple[str | None, str]:
    """Split a leading task identifier off: ``"[refer] the cat"`` -> ``("refer", "the cat")``.

    Returns:
        The task (None when the text has no leading identifier) and the remaining text.
    """
    match = _TASK_PREFIX.match(text)
    if match is None:
        return None, text
    return match.group(1), text[match.end() :]
