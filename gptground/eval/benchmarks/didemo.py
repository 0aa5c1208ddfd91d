"""Reader for DiDeMo (``{train,val,test}_data.json`` of LocalizingMoments).

Each record: ``annotation_id``, ``description``, ``video`` (file name), ``times`` (one
``[first, last]`` pair of 5-second segment indices 0-5 per annotator), ``num_segments``.
Segments ``i..j`` cover seconds ``[5 i, 5 (j + 1)]``, clipped to the video's duration
where it is known. All annotators' windows are kept: the metric matches the best one.
(DiDeMo's own script averages the top-3 of 4 annotators instead; numbers differ.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from gptground.eval.benchmarks.items import MomentItem
from gptground.eval.errors import EvalInputError
from gptground.eval.fields import Where, require, text
from gptground.eval.files import PathLike, load_json
from gptground.grounding.types import Span

SEGMENT_SECONDS = 5.0
NUM_SEGMENTS = 6


def read_didemo(
    path: PathLike, *, durations: Mapping[str, float] | None = None
) -> Iterator[MomentItem]:
    """Read DiDeMo moments.

    Args:
        path: A ``*_data.json`` file.
        durations: Optional video file name -> seconds, to clip the last segment.

    Yields:
        MomentItem with id ``annotation_id`` and one span per annotator window.

    Raises:
        EvalInputError: A record lacks a key, or a window is not ``0 <= i <= j <= 5``.
    """
    records = load_json(path)
    if not isinstance(records, list):
        raise EvalInputError(path, "expected a JSON list of records")
    for index, record in enumerate(records):
        where = Where(os.fspath(path), record=index)
        video = text(record, "video", where)
        duration = None if durations is None else durations.get(video)
        windows = require(record, "times", where)
        if not isinstance(windows, list) or not windows:
            raise where.error(f"'times' must be a non-empty list of [i, j], got {windows!r}")
        spans = tuple(segments_to_span(window, duration, where) for window in windows)
        query = text(record, "description", where).strip()
        yield MomentItem(
            str(require(record, "annotation_id", where)), video, query, spans, duration
        )


def segments_to_span(window: Any, duration: float | None, where: Where) -> Span:
    """``[i, j]`` segment indices -> ``Span(5 i, 5 (j + 1))`` seconds, clipped to duration."""
    valid = (
        isinstance(window, list)
        and len(window) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) for i in window)
        and 0 <= window[0] <= window[1] < NUM_SEGMENTS
    )
    if not valid:
        raise where.error(f"a time window must be [i, j] with 0 <= i <= j <= 5, got {window!r}")
    start, end = SEGMENT_SECONDS * window[0], SEGMENT_SECONDS * (window[1] + 1)
    if duration is not None:
        start, end = min(start, duration), min(end, duration)
    return Span(start, end)
