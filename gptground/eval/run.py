"""Evaluating a model on a benchmark: batched greedy answers -> predictions JSONL + metrics.

``evaluate`` answers :class:`~gptground.eval.queries.EvalItem` s with a loaded model, on one
process or sharded over many (:mod:`gptground.eval.distributed`), and scores them with the
protocols of :mod:`gptground.eval.metrics`. ``evaluate_file`` does the whole run from a
model folder and an annotation file, under Lightning Fabric for several devices, and
writes into the output folder::

    predictions.jsonl   one line per item, in input order: id, task, prompt, prediction
                        (raw text), boxes (pixels) or spans (seconds), answer (truth), iou,
                        image_size or duration, format, parse_failures, and ``error`` when
                        the item's media failed to load
    metrics.json        the metrics; ``gptground score predictions.jsonl --task rec|tvg``
                        recomputes exactly these from the file alone

An item whose media fail to load (missing, cut short, undecodable) is a wrong answer: an
empty prediction whose ``error`` names the file, counted in ``media_errors`` and kept in the
denominator, and the run goes on. ``strict=True`` makes it fail instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
from lightning.fabric import Fabric
from transformers import LogitsProcessor

from gptground.data.readers import read_records
from gptground.eval.benchmark_files import check_benchmark_options, read_benchmark_items
from gptground.eval.constrained import CoordinateConstraint
from gptground.eval.distributed import gather_in_order, rank_and_world, shard_positions
from gptground.eval.errors import EvalMediaError
from gptground.eval.generate import Answer, answer_queries, inference_dtype
from gptground.eval.metrics import box_iou, rec_accuracy, span_iou, temporal_grounding
from gptground.eval.queries import (
    CLIP_MODALITY,
    EVAL_TASKS,
    EvalItem,
    items_from_benchmark,
    items_from_records,
    question_text,
    task_values,
)
from gptground.eval.score import count_media_errors, write_metrics
from gptground.eval.wandb_table import log_predictions
from gptground.grounding import DEFAULT_FORMAT, Box, Span, get_format
from gptground.model.build import load_model
from gptground.model.folder import resolve_text_settings
from gptground.processor import Processor

PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"


@dataclass
class Prediction:
    """One answered item, as written to the predictions file.

    Attributes:
        values: predicted boxes [x1, y1, x2, y2] in pixels, or spans [start, end] in s.
        truths: ground-truth boxes or spans, same units.
        iou: IoU of the first predicted value with its best-matching truth; 0 when none.
        image_size: (width, height) the boxes were de-normalised with (box tasks).
        duration: clip length in s the spans were de-normalised with (span tasks).
        failures: why parts of the answer could not be read.
        error: why the item could not be asked (its media failed to load; names the file).
    """

    id: str
    task: str
    prompt: str
    text: str
    values: list[list[float]]
    truths: list[list[float]]
    iou: float
    format: str
    image_size: tuple[float, float] | None = None
    duration: float | None = None
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSONL line; ``gptground score`` reads id, prediction, answer, size and format."""
        kind = task_values(self.task)
        line = {
            "id": self.id,
            "task": self.task,
            "prompt": self.prompt,
            "prediction": self.text,
            kind: self.values,
            "answer": self.truths,
            "iou": self.iou,
        }
        if kind == "boxes":  # unknown (null) only when the image failed to load
            line["image_size"] = list(self.image_size) if self.image_size is not None else None
        else:
            line["duration"] = self.duration
        line["format"] = self.format
        line["parse_failures"] = self.failures
        if self.error is not None:
            line["error"] = self.error
        return line


def to_prediction(item: EvalItem, answer: Answer, task: str, fmt: str) -> Prediction:
    """Parse one answer with the item's image size or clip duration and score it.

    An answer with an ``error`` (its media failed to load) is wrong: no value, IoU 0.
    """
    parser = get_format(fmt)
    if answer.error is not None:
        return Prediction(
            id=item.id, task=task, prompt=question_text(item.query.question), text="", values=[],
            truths=[truth.as_list() for truth in item.truths], iou=0.0, format=parser.name,
            image_size=item.image_size, duration=item.duration, error=answer.error,
        )
    if task_values(task) == "boxes":
        size = tuple(item.image_size or answer.media_meta["image"].size)
        parsed = parser.parse(answer.text, image_size=size)
        found, iou_of, scale = parsed.boxes, box_iou, {"image_size": size}
    else:
        duration = item.duration or answer.media_meta[CLIP_MODALITY[task]].duration
        parsed = parser.parse(answer.text, duration=duration)
        found, iou_of, scale = parsed.spans, span_iou, {"duration": duration}
    return Prediction(
        id=item.id,
        task=task,
        prompt=question_text(item.query.question),
        text=answer.text,
        values=[value.as_list() for value in found],
        truths=[truth.as_list() for truth in item.truths],
        iou=max(iou_of(found[0], truth) for truth in item.truths) if found else 0.0,
        format=parser.name,
        failures=[failure.reason for failure in parsed.failures],
        **scale,
    )


def score_predictions(predictions: Sequence[Prediction], task: str) -> dict[str, float | int]:
    """The task's metrics over predictions (REC Acc@0.5, or R@1 at 0.3/0.5/0.7 and mIoU),
    with ``media_errors``: items whose media failed to load (wrong, in the denominator)."""
    if task_values(task) == "boxes":
        metrics = rec_accuracy(
            [[Box(*v) for v in p.values] for p in predictions], [[Box(*t) for t in p.truths] for p in predictions]
        )
    else:
        metrics = temporal_grounding(
            [[Span(*v) for v in p.values] for p in predictions], [[Span(*t) for t in p.truths] for p in predictions]
        )
    return count_media_errors(metrics, sum(p.error is not None for p in predictions))


def evaluate(
    model,
    processor: Processor,
    items: Sequence[EvalItem],
    task: str,
    fmt: str = DEFAULT_FORMAT,
    batch_size: int = 8,
    max_new_tokens: int = 48,
    logits_processor: Sequence[LogitsProcessor] | None = None,
    strict: bool = False,
) -> tuple[dict[str, float | int], list[Prediction]]:
    """Answer and score ``items``; with a process group, each process answers its shard.

    Args:
        model: a GroundingModel on this process's device.
        processor: its processor (tokenizer, modalities, template).
        items: the benchmark; ids must be unique.
        task: one of :data:`~gptground.eval.queries.EVAL_TASKS`.
        fmt: grounding format the model answers in.
        batch_size: questions generated together per process.
        max_new_tokens: the most tokens per answer.
        logits_processor: e.g. ``[CoordinateConstraint(tokenizer)]``.
        strict: fail at the first item whose media fail to load, instead of counting it
            as a wrong answer. With several processes, every process fails after the
            answers are gathered (one failing alone would leave the others waiting).

    Returns:
        (metrics, predictions in input order), the same on every process and for any
        number of processes.

    Raises:
        SampleMediaError (one process) or EvalMediaError (several), when ``strict``.
    """
    task_values(task)
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"item ids must be unique; repeated: {repeated}")
    rank, world = rank_and_world()
    positions = shard_positions(len(items), rank, world)
    mine = [items[i] for i in positions]
    on_media_error = "raise" if strict and world == 1 else "empty_answer"
    answers = answer_queries(
        model, processor, [i.query for i in mine], batch_size, max_new_tokens, logits_processor,
        on_media_error=on_media_error,
    )
    local = [(pos, to_prediction(item, answer, task, fmt)) for pos, item, answer in zip(positions, mine, answers)]
    predictions = gather_in_order(local, len(items))
    failed = [p for p in predictions if p.error is not None]
    if strict and failed:
        raise EvalMediaError([(p.id, p.error) for p in failed])
    return score_predictions(predictions, task), predictions


def write_outputs(predictions: Sequence[Prediction], metrics: dict[str, float | int], out: str) -> None:
    """``out/predictions.jsonl`` and ``out/metrics.json`` (local folder or fsspec URL)."""
    path = f"{out.rstrip('/')}/{PREDICTIONS_FILE}"
    with fsspec.open(path, "w", encoding="utf-8", auto_mkdir=True) as handle:
        for prediction in predictions:
            handle.write(json.dumps(prediction.to_json(), ensure_ascii=False) + "\n")
    write_metrics(metrics, f"{out.rstrip('/')}/{METRICS_FILE}")


@dataclass
class EvalSettings:
    """One evaluation run (the arguments of ``gptground eval``)."""

    model: str  # model folder (a run folder's `model/`)
    data: str  # annotation file with targets (JSON list or JSONL; local or fsspec URL)
    task: str  # one of EVAL_TASKS
    out: str  # output folder for predictions.jsonl and metrics.json
    roots: dict[str, str] = field(default_factory=dict)  # record key -> media folder
    batch_size: int = 8  # questions generated together per device
    max_new_tokens: int = 48  # the most tokens per answer
    devices: int = 1  # processes, one per device
    accelerator: str = "auto"  # "cpu", "gpu" or "auto"
    strategy: str | None = None  # None: "ddp" for devices > 1 (command re-launched per rank)
    fmt: str | None = None  # grounding format of the answers; None = the one the model folder records
    template: str | None = None  # conversation template; None = the one the model folder records
    constrained: bool = False  # decode coordinates constrained to the format's literal
    limit: int | None = None  # evaluate only the first N items
    strict: bool = False  # fail on an item whose media fail to load, instead of scoring it wrong
    # Read `data` as this published benchmark's file (gptground.eval.benchmark_files), not as
    # GPTGround records; with its side file (`benchmark_meta`) and `split` where it has them.
    benchmark: str | None = None
    benchmark_meta: str | None = None
    split: str | None = None
    wandb: bool = False  # log a W&B table of predictions with pictures
    wandb_project: str = "gptground"  # W&B project
    wandb_rows: int = 16  # table rows (each draws a picture)

    def __post_init__(self) -> None:
        if self.benchmark is not None:
            scored_as = check_benchmark_options(self.benchmark, self.benchmark_meta, self.split).task
            if self.task != scored_as:
                raise ValueError(f"--benchmark {self.benchmark} is scored as task {scored_as!r}, not {self.task!r}")
        elif self.benchmark_meta or self.split:
            raise ValueError("--benchmark-meta and --split go with --benchmark")
        if self.task not in EVAL_TASKS:
            raise ValueError(f"EvalSettings.task must be one of {EVAL_TASKS}, got {self.task!r}")
        for name in ("batch_size", "max_new_tokens", "devices", "wandb_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvalSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"EvalSettings.limit must be >= 1 or None, got {self.limit}")
        if self.fmt is not None:
            get_format(self.fmt)  # fails early, naming the formats that exist


def evaluate_file(model: str, data: str, task: str, out: str, **options: Any) -> dict[str, float | int] | None:
    """Evaluate a model folder on an annotation file; see :class:`EvalSettings` for options.

    Returns:
        The metrics on the rank-0 process; None on the other processes of a multi-device
        run (they return after rank 0 has written the outputs).
    """
    return run_evaluation(EvalSettings(model=model, data=data, task=task, out=out, **options))


def run_evaluation(settings: EvalSettings) -> dict[str, float | int] | None:
    """:func:`evaluate_file` from settings: one process per device under Lightning Fabric."""
    strategy = settings.strategy or ("ddp" if settings.devices > 1 else "auto")
    fabric = Fabric(accelerator=settings.accelerator, devices=settings.devices, strategy=strategy)
    return fabric.launch(_evaluate_on_rank, settings)


def load_items(settings: EvalSettings) -> list[EvalItem]:
    """The settings' annotation or benchmark file as evaluation items (the first ``limit``)."""
    if settings.benchmark:
        found = read_benchmark_items(settings.benchmark, settings.data, settings.benchmark_meta, settings.split)
        items = items_from_benchmark(found, settings.roots)
    else:
        items = items_from_records(read_records(settings.data, on_error="fail"), settings.task, settings.roots)
    return items[: settings.limit] if settings.limit else items


def _evaluate_on_rank(fabric: Fabric, settings: EvalSettings) -> dict[str, float | int] | None:
    dtype = inference_dtype(fabric.device)
    model, tokenizer, _ = load_model(settings.model, dtype)  # read straight into dtype
    model.to(device=fabric.device, dtype=dtype)
    template, fmt = resolve_text_settings(settings.model, settings.template, settings.fmt)
    positions = model.decoder.config.max_position_embeddings
    processor = Processor(tokenizer, dict(model.modalities), template, max_length=positions - settings.max_new_tokens)
    constraint = [CoordinateConstraint(tokenizer, fmt)] if settings.constrained else None
    items = load_items(settings)
    metrics, predictions = evaluate(
        model, processor, items, settings.task, fmt, settings.batch_size, settings.max_new_tokens, constraint,
        strict=settings.strict,
    )
    if fabric.global_rank == 0:
        write_outputs(predictions, metrics, settings.out)
        if settings.wandb:
            log_predictions(predictions, items, metrics, settings.out, settings.wandb_project, settings.wandb_rows)
    fabric.barrier()
    return metrics if fabric.global_rank == 0 else None
