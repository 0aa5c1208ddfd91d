"""Reader for VGG-SS, the sound-source boxes on VGGSound clips (``vggss.json``).

A JSON list of ``{"file": "<YouTube id>_<start s, 6 digits>", "bbox": [[x1, y1, x2, y2],
...], "class": "<VGGSound label>"}``, boxes normalised to [0, 1] of the annotated frame
(the 125th frame of the 25 fps clip, about its middle). The file gives no frame size, so
the caller states it: one size for all (evaluation code commonly resizes frames to
224 x 224 and scales the boxes likewise) or a size per clip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from gptground.eval.benchmarks.items import SoundSourceItem
from gptground.eval.errors import EvalInputError
from gptground.eval.fields import Where, numbers, require, text
from gptground.eval.files import PathLike, load_json
from gptground.grounding.types import Box


def read_vggss(
    path: PathLike,
    *,
    image_size: tuple[int, int] | Mapping[str, tuple[int, int]],
    image_ext: str = ".jpg",
    sound_ext: str = ".wav",
) -> Iterator[SoundSourceItem]:
    """Read sound-source boxes in pixels.

    Args:
        path: ``vggss.json``.
        image_size: ``(width, height)`` of every frame, or clip id -> ``(width, height)``.
        image_ext: Extension of the extracted frame files.
        sound_ext: Extension of the extracted audio files.

    Yields:
        SoundSourceItem with id ``file``; coordinates are clipped to [0, 1] before scaling.

    Raises:
        EvalInputError: A malformed record, or a clip missing from an ``image_size`` mapping.
    """
    records = load_json(path)
    if not isinstance(records, list):
        raise EvalInputError(path, "expected a JSON list of records")
    for index, record in enumerate(records):
        where = Where(os.fspath(path), record=index)
        clip = text(record, "file", where)
        size = _size_of(image_size, clip, where)
        boxes = tuple(_pixel_box(raw, size, where) for raw in _box_list(record, where))
        label = record.get("class") if isinstance(record.get("class"), str) else None
        yield SoundSourceItem(clip, clip + image_ext, clip + sound_ext, boxes, size, label)


def _box_list(record: Any, where: Where) -> list[Any]:
    raw = require(record, "bbox", where)
    if not isinstance(raw, list) or not raw:
        raise where.error(f"'bbox' must be a non-empty list of boxes, got {raw!r}")
    return raw


def _pixel_box(raw: Any, size: tuple[int, int], where: Where) -> Box:
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in numbers(raw, 4, "bbox", where))
    width, height = size
    return Box(x1 * width, y1 * height, x2 * width, y2 * height)


def _size_of(
    image_size: tuple[int, int] | Mapping[str, tuple[int, int]], clip: str, where: Where
) -> tuple[int, int]:
    if isinstance(image_size, Mapping):
        if clip not in image_size:
            raise where.error(f"clip {clip!r} has no entry in the image_size mapping")
        return tuple(image_size[clip])
    return tuple(image_size)
