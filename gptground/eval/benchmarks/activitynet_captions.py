"""Reader for ActivityNet Captions (``train.json``, ``val_1.json``, ``val_2.json``).

The file maps a video id (``v_<YouTube id>``) to ``{"duration": s, "timestamps":
[[start, end], ...], "sentences": [...]}``, one timestamp per sentence, in seconds. Some
timestamps run past the duration; they are clipped to ``[0, duration]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from gptground.eval.benchmarks.items import MomentItem
from gptground.eval.errors import EvalInputError
from gptground.eval.fields import Where, number, numbers, require
from gptground.eval.files import PathLike, load_json
from gptground.grounding.types import Span


def read_activitynet_captions(path: PathLike, *, video_ext: str = ".mp4") -> Iterator[MomentItem]:
    """Read one query per sentence.

    Args:
        path: An ActivityNet Captions JSON file.
        video_ext: Extension of the downloaded videos (they vary: ``.mp4``, ``.mkv``, ...).

    Yields:
        MomentItem with id ``"{video id}_{sentence index}"``.

    Raises:
        EvalInputError: A video lacks a key, or timestamps and sentences differ in number.
    """
    videos = load_json(path)
    if not isinstance(videos, dict):
        raise EvalInputError(path, "expected a JSON object mapping video ids to annotations")
    for video_id, entry in videos.items():
        where = Where(os.fspath(path), record=video_id)
        duration = number(require(entry, "duration", where), "duration", where, positive=True)
        for index, (span, sentence) in enumerate(_moments(entry, duration, where)):
            yield MomentItem(
                f"{video_id}_{index}", video_id + video_ext, sentence, (span,), duration
            )


def _moments(entry: Any, duration: float, where: Where) -> Iterator[tuple[Span, str]]:
    stamps, sentences = require(entry, "timestamps", where), require(entry, "sentences", where)
    if not (isinstance(stamps, list) and isinstance(sentences, list)):
        raise where.error("'timestamps' and 'sentences' must be lists")
    if len(stamps) != len(sentences):
        raise where.error(f"{len(stamps)} timestamps for {len(sentences)} sentences")
    for stamp, sentence in zip(stamps, sentences, strict=True):
        if not isinstance(sentence, str):
            raise where.error(f"a sentence must be a string, got {sentence!r}")
        clipped = (min(max(t, 0.0), duration) for t in numbers(stamp, 2, "timestamp", where))
        start, end = sorted(clipped)
        yield Span(start, end), sentence.strip()
