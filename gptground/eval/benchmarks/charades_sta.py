"""Reader for Charades-STA (``charades_sta_train.txt`` / ``charades_sta_test.txt``).

Each line is ``<video id> <start s> <end s>##<sentence>``. Video durations are not in
that file: they are the ``length`` column of Charades' ``Charades_v1_train.csv`` /
``Charades_v1_test.csv`` (:func:`read_charades_durations`). A few end times run past
the video; where the duration is known, spans are clipped to ``[0, duration]`` as
common evaluation code does.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Iterator, Mapping

from gptground.eval.benchmarks.items import MomentItem
from gptground.eval.errors import EvalInputError
from gptground.eval.fields import Where, number
from gptground.eval.files import PathLike, iter_lines, read_text
from gptground.grounding.types import Span


def read_charades_sta(
    path: PathLike,
    *,
    durations: Mapping[str, float] | None = None,
    video_ext: str = ".mp4",
) -> Iterator[MomentItem]:
    """Read Charades-STA query lines.

    Args:
        path: ``charades_sta_{train,test}.txt``.
        durations: Video id -> seconds; every video of the file must be present.
        video_ext: Extension of the video files (``Charades_v1_480`` ships ``.mp4``).

    Yields:
        MomentItem with id ``"{video id}_{k}"`` (k counts the video's queries from 0).

    Raises:
        EvalInputError: A malformed line, or a video missing from ``durations``.
    """
    seen: Counter[str] = Counter()
    for line, content in iter_lines(path):
        where = Where(os.fspath(path), line=line)
        video, start, end, query = _split_line(content, where)
        duration = _duration(durations, video, where)
        span = Span(min(start, end), max(start, end))
        if duration is not None:
            span = Span(min(span.start, duration), min(span.end, duration))
        yield MomentItem(f"{video}_{seen[video]}", video + video_ext, query, (span,), duration)
        seen[video] += 1


def read_charades_durations(path: PathLike) -> dict[str, float]:
    """Video id -> duration in seconds, from a ``Charades_v1_*.csv`` (``id``, ``length``).

    Raises:
        EvalInputError: The header lacks ``id`` or ``length``, or a length is not a number.
    """
    reader = csv.DictReader(io.StringIO(read_text(path)))
    missing = {"id", "length"} - set(reader.fieldnames or ())
    if missing:
        raise EvalInputError(path, f"CSV header lacks column(s) {sorted(missing)}", line=1)
    durations = {}
    for row in reader:
        where = Where(os.fspath(path), line=reader.line_num)
        durations[row["id"]] = number(_float(row["length"], where), "length", where, positive=True)
    return durations


def _split_line(content: str, where: Where) -> tuple[str, float, float, str]:
    head, separator, query = content.partition("##")
    fields = head.split()
    if not separator or len(fields) != 3 or not query.strip():
        raise where.error(f"expected '<video> <start> <end>##<sentence>', got {content!r}")
    start, end = (number(_float(field, where), "time", where) for field in fields[1:])
    if start < 0 or end < 0:
        raise where.error(f"times must not be negative, got {fields[1:]}")
    return fields[0], start, end, query.strip()


def _float(field: str, where: Where) -> float:
    try:
        return float(field)
    except ValueError:
        raise where.error(f"expected a number, got {field!r}") from None


def _duration(durations: Mapping[str, float] | None, video: str, where: Where) -> float | None:
    if durations is None:
        return None
    if video not in durations:
        raise where.error(f"video {video!r} has no duration in the durations table")
    return float(durations[video])
