"""Evaluation items: a question with its media and ground truth, from records or readers.

Two sources feed :func:`gptground.eval.run.evaluate`:

- annotation records in GroundingGPT format whose ``target`` field holds the truth (the
  synthetic world's val/test files): :func:`items_from_records`;
- the typed items of the benchmark readers (:mod:`gptground.eval.benchmarks`), asked with
  a question template: :func:`items_from_benchmark`.

Tasks: ``rec`` and ``sound_loc`` are answered with boxes (pixels), ``video_tg``,
``audio_tg`` and ``tvg`` (any temporal grounding of a video) with spans (seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gptground.conversation import HUMAN, Turn
from gptground.data.readers import Record, RecordError, resolve_media_path
from gptground.eval.benchmarks.items import MomentItem, RecItem, SoundSourceItem
from gptground.eval.generate import Query
from gptground.eval.tasks import (  # noqa: F401 - re-exported: the task constants' old home
    CLIP_MODALITY,
    EVAL_TASKS,
    SCORE_TASKS,
    TASK_VALUES,
    task_values,
)
from gptground.grounding.types import Box, Span
from modalities import get_modality_class, registered_modalities


DEFAULT_QUESTIONS = {
    "rec": "Where is {query}?",
    "tvg": "When does this happen in the video: {query}?",
    "sound_loc": "Which object makes this sound?",
}
"""Question templates for benchmark items; ``{query}`` is the expression or sentence."""


@dataclass(frozen=True)
class EvalItem:
    """One question to answer and what a right answer is.

    Attributes:
        query: the question and its media (modality name -> path or URL).
        truths: ground-truth boxes (pixels) or spans (seconds); the best match counts.
        image_size: (width, height) of the original image; None: the loaded image's.
        duration: clip length in seconds; None: the loaded clip's.
    """

    query: Query
    truths: tuple[Box, ...] | tuple[Span, ...]
    image_size: tuple[float, float] | None = None
    duration: float | None = None

    @property
    def id(self) -> str:
        return self.query.id


def default_record_keys() -> dict[str, str]:
    """Record media key -> modality name, for every registered modality ("sound" -> "audio")."""
    return {get_modality_class(name).record_key: name for name in registered_modalities()}


# --- records -------------------------------------------------------------------------------
def items_from_records(
    records: Iterable[Record],
    task: str,
    roots: Mapping[str, str] | None = None,
    record_keys: Mapping[str, str] | None = None,
) -> list[EvalItem]:
    """Evaluation items from records whose ``target`` field holds the ground truth.

    Args:
        records: records from :func:`gptground.data.readers.read_records`.
        task: one of :data:`EVAL_TASKS`; each record's ``target.task`` must agree with it.
        roots: record key ("image", "video", "sound") -> folder or URL the media paths are
            relative to.
        record_keys: record key -> modality name (default: :func:`default_record_keys`).

    Raises:
        RecordError: a record without a usable target or with unknown media, naming it.
    """
    values = task_values(task)
    keys = dict(record_keys or default_record_keys())
    return [_record_item(record, task, values, roots or {}, keys) for record in records]


def _record_item(record: Record, task: str, values: str, roots: Mapping[str, str], keys: Mapping[str, str]) -> EvalItem:
    target = record.extra.get("target")
    if not isinstance(target, dict):
        raise RecordError(record.where, "no 'target' object with the ground truth (val/test records carry one)")
    if TASK_VALUES.get(target.get("task"), values) != values:
        raise RecordError(record.where, f"target.task is {target.get('task')!r}, which does not answer task {task!r}")
    unknown = sorted(set(record.media) - set(keys))
    if unknown:
        raise RecordError(record.where, f"media keys {unknown} belong to no modality; known: {sorted(keys)}")
    media = {keys[key]: resolve_media_path(roots.get(key), path) for key, path in record.media.items()}
    query = Query(record.id, _up_to_last_question(record), media)
    return _box_item(query, target, record) if values == "boxes" else _span_item(query, target, record)


def _box_item(query: Query, target: Mapping[str, Any], record: Record) -> EvalItem:
    boxes = tuple(Box(*_numbers(b, 4, "target.boxes[]", record)) for b in _list(target, "boxes", record))
    width, height = _numbers(target.get("image_size"), 2, "target.image_size", record)
    return EvalItem(query, boxes, image_size=(width, height))


def _span_item(query: Query, target: Mapping[str, Any], record: Record) -> EvalItem:
    spans = tuple(Span(*_numbers(s, 2, "target.spans[]", record)) for s in _list(target, "spans", record))
    duration = target.get("duration")
    if duration is not None:
        (duration,) = _numbers([duration], 1, "target.duration", record)
    return EvalItem(query, spans, duration=duration)


def _up_to_last_question(record: Record) -> list[Turn]:
    last = max((i for i, turn in enumerate(record.conversations) if turn.role == HUMAN), default=None)
    if last is None:
        raise RecordError(record.where, "no human turn to ask")
    return record.conversations[: last + 1]


def _list(target: Mapping[str, Any], key: str, record: Record) -> list:
    value = target.get(key)
    if not isinstance(value, list) or not value:
        raise RecordError(record.where, f"target.{key} must be a non-empty list, got {value!r}")
    return value


def _numbers(value: Any, length: int, what: str, record: Record) -> list[float]:
    ok = isinstance(value, list) and len(value) == length
    if not ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise RecordError(record.where, f"{what} must be a list of {length} numbers, got {value!r}")
    return [float(v) for v in value]


# --- benchmark readers ---------------------------------------------------------------------
def items_from_benchmark(
    items: Iterable[RecItem | MomentItem | SoundSourceItem],
    roots: Mapping[str, str] | None = None,
    questions: Mapping[str, str] | None = None,
) -> list[EvalItem]:
    """Evaluation items from benchmark reader items (RefCOCO, Charades-STA, VGG-SS, ...).

    Args:
        items: RecItem (task rec), MomentItem (task tvg) or SoundSourceItem (sound_loc).
        roots: record key ("image", "video", "sound") -> media folder or URL.
        questions: task -> question template with ``{query}``; defaults
            :data:`DEFAULT_QUESTIONS`.
    """
    roots = roots or {}
    asked = {**DEFAULT_QUESTIONS, **(questions or {})}
    converted = []
    for item in items:
        if isinstance(item, RecItem):
            question = asked["rec"].format(query=item.expression)
            query = Query(item.id, question, {"image": resolve_media_path(roots.get("image"), item.image)})
            converted.append(EvalItem(query, item.boxes, image_size=item.image_size))
        elif isinstance(item, MomentItem):
            question = asked["tvg"].format(query=item.query.strip().rstrip("."))
            query = Query(item.id, question, {"video": resolve_media_path(roots.get("video"), item.video)})
            converted.append(EvalItem(query, item.spans, duration=item.duration))
        elif isinstance(item, SoundSourceItem):
            media = {
                "image": resolve_media_path(roots.get("image"), item.image),
                "audio": resolve_media_path(roots.get("sound"), item.sound),
            }
            query = Query(item.id, asked["sound_loc"].format(query=item.label or ""), media)
            converted.append(EvalItem(query, item.boxes, image_size=item.image_size))
        else:
            raise TypeError(f"no grounding task for benchmark item {type(item).__name__}")
    return converted


def question_text(question: str | Sequence[Turn]) -> str:
    """The last question of a query, as written (for predictions files and tables)."""
    return question if isinstance(question, str) else question[-1].value
