"""``gptground score``: recompute metrics from a predictions JSONL file, without a model.

Each line's raw answer is parsed with its grounding format (the ``--format`` override,
else the line's ``format``, else ``groundinggpt``) into pixels or seconds, then scored:

- ``rec``: ``{"acc@0.5", "n", "parse_failures", "media_errors"}``;
- ``tvg``: ``{"r1@0.3", "r1@0.5", "r1@0.7", "miou", "n", "parse_failures", "media_errors"}``.

A line with an ``error`` (the item's media failed to load in ``gptground eval``) is a
wrong answer, counted in ``media_errors`` and in ``n``.

The protocol is :mod:`gptground.eval.metrics`'s. Other systems' outputs are scored by
naming their format (``--format minigptv2``, ``shikra``, ``vtimellm``, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import fsspec

from gptground.eval.errors import EvalInputError
from gptground.eval.files import PathLike
from gptground.eval.metrics import rec_accuracy, temporal_grounding
from gptground.eval.predictions import (
    TASKS,
    BoxPrediction,
    SpanPrediction,
    read_box_predictions,
    read_span_predictions,
)
from gptground.grounding import (
    DEFAULT_FORMAT,
    GroundingFormat,
    UnknownFormatError,
    available_formats,
    get_format,
)


def score_file(
    path: PathLike, task: str, fmt: str | None = None, out: PathLike | None = None
) -> dict[str, float | int]:
    """Score a predictions JSONL file.

    Args:
        path: The predictions file (local path or fsspec URL).
        task: ``"rec"`` or ``"tvg"``.
        fmt: Grounding format for every line, overriding the lines' ``format`` keys.
        out: Where to also write the metrics as JSON (parent folders are created).

    Returns:
        The metrics dict of the task; rates are fractions in [0, 1].

    Raises:
        ValueError: ``task`` is not one of :data:`~gptground.eval.predictions.TASKS`.
        EvalInputError: A bad line, an unknown format, or a format that cannot write the
            task's values (e.g. ``shikra`` has no time spans), naming file and line.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    formats = _FormatResolver(os.fspath(path), task, fmt)
    if task == "rec":
        metrics = _score_rec(read_box_predictions(path), formats)
    else:
        metrics = _score_tvg(read_span_predictions(path), formats)
    if out is not None:
        write_metrics(metrics, out)
    return metrics


def count_media_errors(metrics: dict[str, float | int], errors: int) -> dict[str, float | int]:
    """Add ``media_errors`` to ``metrics``: items whose media failed to load.

    They were scored as wrong answers with no value, which the metric functions count as
    parse failures; they are not, so they move from ``parse_failures`` to ``media_errors``.
    """
    metrics["parse_failures"] -= errors
    metrics["media_errors"] = errors
    return metrics


def write_metrics(metrics: dict[str, float | int], out: PathLike) -> None:
    """Write ``metrics`` as indented JSON, creating parent folders of a local path."""
    with fsspec.open(os.fspath(out), "w", encoding="utf-8", auto_mkdir=True) as handle:
        json.dump(metrics, handle, indent=2)
        handle.write("\n")


def add_score_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``score`` command's arguments to ``parser`` and return it."""
    parser.add_argument(
        "predictions",
        help="predictions JSONL; each line {id, prediction, answer, image_size|duration[, format]}",
    )
    parser.add_argument("--task", required=True, choices=TASKS, help="rec: boxes; tvg: time spans")
    parser.add_argument(
        "--format",
        dest="fmt",
        default=None,
        help="grounding format of every prediction, overriding per-line 'format' "
        f"(default: per line, else {DEFAULT_FORMAT}); one of {', '.join(available_formats())}",
    )
    parser.add_argument("--out", default=None, help="also write the metrics JSON to this path")
    return parser


def run_score(args: argparse.Namespace) -> int:
    """Run ``score`` from parsed arguments: metrics JSON on stdout; exit status 2 on bad input."""
    try:
        metrics = score_file(args.predictions, args.task, fmt=args.fmt, out=args.out)
    except EvalInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2))
    return 0


def _score_rec(records: list[BoxPrediction], formats: _FormatResolver) -> dict[str, float | int]:
    # A line with an "error" (its media failed to load) is a wrong answer with no box.
    predictions = [[] if r.error else formats.of(r).parse(r.text, image_size=r.image_size).boxes for r in records]
    metrics = rec_accuracy(predictions, [r.truths for r in records])
    return count_media_errors(metrics, sum(r.error is not None for r in records))


def _score_tvg(records: list[SpanPrediction], formats: _FormatResolver) -> dict[str, float | int]:
    predictions = [[] if r.error else formats.of(r).parse(r.text, duration=r.duration).spans for r in records]
    metrics = temporal_grounding(predictions, [r.truths for r in records])
    return count_media_errors(metrics, sum(r.error is not None for r in records))


class _FormatResolver:
    """Finds and checks the grounding format of each line, once per name."""

    def __init__(self, path: str, task: str, override: str | None) -> None:
        self.path = path
        self.task = task
        self.override = override
        self._checked: dict[str, GroundingFormat] = {}
        if override is not None:
            self._get(override, line=None)

    def of(self, record: BoxPrediction | SpanPrediction) -> GroundingFormat:
        name = self.override or record.format or DEFAULT_FORMAT
        return self._get(name, line=None if self.override else record.line)

    def _get(self, name: str, line: int | None) -> GroundingFormat:
        if name not in self._checked:
            self._checked[name] = self._check(name, line)
        return self._checked[name]

    def _check(self, name: str, line: int | None) -> GroundingFormat:
        source = "--format" if line is None else "'format'"
        try:
            fmt = get_format(name)
        except UnknownFormatError as error:
            raise EvalInputError(self.path, f"{source}: {error}", line=line) from error
        notation, kind = (fmt.boxes, "boxes") if self.task == "rec" else (fmt.spans, "time spans")
        if notation is None:
            raise EvalInputError(
                self.path,
                f"{source}: format {name!r} has no notation for {kind}, which task "
                f"{self.task!r} needs",
                line=line,
            )
        return fmt
