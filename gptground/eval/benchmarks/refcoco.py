"""Readers for RefCOCO, RefCOCO+ and RefCOCOg in the three layouts in circulation.

- ``refer``: the original release (``refs(unc).p`` / ``refs(umd).p`` / ``refs(google).p``
  plus the COCO-style ``instances.json`` of the same folder). The refs file is a Python
  pickle, and unpickling runs code from the file: it is refused unless the caller passes
  ``allow_pickle=True``. The same list of refs saved as JSON loads without that flag.
- ``shikra``: JSONL records ``{"img_path", "expression", "bbox": [x1, y1, x2, y2] pixels,
  "height", "width"}`` (Shikra's ``REC_refcoco_unc_val.jsonl`` and siblings).
- ``minigptv2``: a JSON list of ``{"img_id", "sents", "bbox": [x, y, w, h] pixels,
  "height", "width"}`` (MiniGPT-v2's evaluation files).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Iterator
from typing import Any

import fsspec

from gptground.eval.benchmarks.items import RecItem
from gptground.eval.errors import EvalInputError
from gptground.eval.fields import Where, box_xywh, box_xyxy, image_size, require, text
from gptground.eval.files import PathLike, iter_jsonl, load_json
from gptground.grounding.types import Box

PICKLE_SUFFIXES = (".p", ".pkl", ".pickle")

# MiniGPT-v2 ids extend the COCO file stem ("COCO_train2014_" + 12 digits) with a suffix.
_COCO_STEM = re.compile(r"COCO_[a-z]+\d{4}_\d{12}")


def read_refer(
    refs_path: PathLike,
    instances_path: PathLike,
    *,
    split: str | None = None,
    allow_pickle: bool = False,
) -> Iterator[RecItem]:
    """Read the original ``refer`` layout: one item per referring sentence.

    Args:
        refs_path: ``refs(unc).p`` (pickle, needs ``allow_pickle``) or the same list as JSON.
        instances_path: The ``instances.json`` next to it (COCO images and annotations).
        split: Keep only refs of this split (``val``, ``testA``, ``testB``, ``test``, ...).
        allow_pickle: Allow unpickling ``refs_path``; only for files from a trusted source.

    Yields:
        RecItem with id ``"{ref_id}_{sent_id}"`` and the COCO box converted to corners.

    Raises:
        EvalInputError: A malformed ref, a ref naming an unknown image or annotation, or
            a pickled ``refs_path`` without ``allow_pickle``.
    """
    refs = _load_refs(refs_path, allow_pickle)
    images, boxes = _index_instances(instances_path)
    for index, ref in enumerate(refs):
        where = Where(os.fspath(refs_path), record=index)
        if split is not None and require(ref, "split", where) != split:
            continue
        yield from _ref_items(ref, images, boxes, where)


def read_shikra_rec(path: PathLike) -> Iterator[RecItem]:
    """Read a Shikra REC JSONL file (``bbox`` in corner pixels).

    Yields:
        RecItem with the record's ``id`` if it has one, else its 0-based record index.
    """
    for index, (line, record) in enumerate(iter_jsonl(path)):
        where = Where(os.fspath(path), line=line)
        yield RecItem(
            id=str(record.get("id", index)),
            image=text(record, "img_path", where),
            expression=text(record, "expression", where),
            boxes=(box_xyxy(require(record, "bbox", where), "bbox", where),),
            image_size=image_size(
                require(record, "width", where), require(record, "height", where), where
            ),
        )


def read_minigptv2_ref(path: PathLike) -> Iterator[RecItem]:
    """Read a MiniGPT-v2 RefCOCO evaluation JSON list (``bbox`` in COCO ``[x, y, w, h]``).

    Yields:
        RecItem with id ``img_id`` and image ``COCO_<split><year>_<12 digits>.jpg``.
    """
    records = load_json(path)
    if not isinstance(records, list):
        raise EvalInputError(path, "expected a JSON list of records")
    for index, record in enumerate(records):
        where = Where(os.fspath(path), record=index)
        img_id = text(record, "img_id", where)
        stem = _COCO_STEM.match(img_id)
        if stem is None:
            raise where.error(f"'img_id' {img_id!r} does not start with a COCO file stem")
        yield RecItem(
            id=img_id,
            image=f"{stem.group(0)}.jpg",
            expression=text(record, "sents", where),
            boxes=(box_xywh(require(record, "bbox", where), "bbox", where),),
            image_size=image_size(
                require(record, "width", where), require(record, "height", where), where
            ),
        )


def _load_refs(path: PathLike, allow_pickle: bool) -> list[Any]:
    name = os.fspath(path)
    if name.endswith(PICKLE_SUFFIXES):
        refs = _unpickle(name, allow_pickle)
    else:
        refs = load_json(name)
    if not isinstance(refs, list):
        raise EvalInputError(name, f"expected a list of refs, got {type(refs).__name__}")
    return refs


def _unpickle(path: str, allow_pickle: bool) -> Any:
    if not allow_pickle:
        raise EvalInputError(
            path,
            "this refs file is a pickle, and unpickling can run arbitrary code: pass "
            "allow_pickle=True only for a file from a source you trust, or load the same "
            "refs saved as JSON",
        )
    warnings.warn(
        f"unpickling {path}: this runs code from the file; do it only for trusted files",
        UserWarning,
        stacklevel=3,
    )
    with fsspec.open(path, "rb") as handle:
        return pickle.load(handle)


def _index_instances(
    path: PathLike,
) -> tuple[dict[int, tuple[str, tuple[int, int]]], dict[int, Box]]:
    """Map image id -> (file name, (w, h)) and annotation id -> box in corner pixels."""
    instances = load_json(path)
    where = Where(os.fspath(path))
    images = {}
    for index, image in enumerate(require(instances, "images", where)):
        at = Where(os.fspath(path), record=f"images[{index}]")
        size = image_size(require(image, "width", at), require(image, "height", at), at)
        images[require(image, "id", at)] = (text(image, "file_name", at), size)
    boxes = {}
    for index, annotation in enumerate(require(instances, "annotations", where)):
        at = Where(os.fspath(path), record=f"annotations[{index}]")
        boxes[require(annotation, "id", at)] = box_xywh(require(annotation, "bbox", at), "bbox", at)
    return images, boxes


def _ref_items(
    ref: Any,
    images: dict[int, tuple[str, tuple[int, int]]],
    boxes: dict[int, Box],
    where: Where,
) -> Iterator[RecItem]:
    image_id, ann_id = require(ref, "image_id", where), require(ref, "ann_id", where)
    if image_id not in images:
        raise where.error(f"image_id {image_id!r} is not in instances.json")
    if ann_id not in boxes:
        raise where.error(f"ann_id {ann_id!r} is not in instances.json")
    file_name, size = images[image_id]
    for sentence in require(ref, "sentences", where):
        yield RecItem(
            id=f"{require(ref, 'ref_id', where)}_{require(sentence, 'sent_id', where)}",
            image=file_name,
            expression=text(sentence, "sent", where),
            boxes=(boxes[ann_id],),
            image_size=size,
            split=require(ref, "split", where),
        )
