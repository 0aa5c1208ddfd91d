"""Grounding metrics as pure functions of typed boxes and spans.

The protocols are the ones written in ``SEED_SYSTEMS.md`` ("Evaluation protocols"); this
module is the single place that implements them:

- IoU of boxes in pixels of the original image, without the +1-pixel convention; a box
  whose corners are reversed has zero area, so it overlaps nothing.
- REC Acc@0.5: the first predicted box counts, correct when IoU >= 0.5 (not the strict
  ``> 0.5`` of some published scripts), an unparseable answer is wrong, the denominator
  is every expression.
- Temporal grounding R@1 at IoU m and mIoU: the first predicted span counts, a reversed
  span is swapped, an unparseable answer scores IoU 0, the best-matching of several
  ground-truth windows counts.
- Phrase grounding recall (Flickr30K Entities): the ANY-box protocol, see
  :func:`phrase_grounding_recall`.

Rates are fractions in [0, 1]; published tables print them multiplied by 100.
Predictions are ``None`` when the answer could not be parsed; an empty list means the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gptground.grounding.types import Box, Span

TVG_THRESHOLDS = (0.3, 0.5, 0.7)
"""The temporal IoU thresholds of the Charades-STA protocol."""

IOU_TOLERANCE = 1e-9
"""Slack on ``IoU >= threshold``: de-normalised coordinates such as ``0.1 * 640`` are off
by one float ulp, which must not turn an IoU of exactly 0.5 into a miss."""

PhraseBoxes = tuple[str, Sequence[Box]]
"""A phrase of a caption and the boxes it is grounded to."""


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes in pixels (no +1-pixel convention).

    Args:
        a: First box.
        b: Second box.

    Returns:
        IoU in [0, 1]; 0 when the union is empty (two zero-area boxes).
    """
    overlap_w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    overlap_h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    intersection = overlap_w * overlap_h
    union = a.area + b.area - intersection
    return intersection / union if union > 0 else 0.0


def span_iou(a: Span, b: Span) -> float:
    """Temporal intersection over union of two spans; a reversed span is swapped first.

    Args:
        a: First span, seconds (or any unit shared with ``b``: IoU is scale-free).
        b: Second span.

    Returns:
        IoU in [0, 1]; 0 when the union is empty (two zero-length spans).
    """
    a, b = _ordered(a), _ordered(b)
    intersection = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = a.length + b.length - intersection
    return intersection / union if union > 0 else 0.0


def rec_accuracy(
    predictions: Sequence[Sequence[Box] | None],
    truths: Sequence[Box | Sequence[Box]],
    threshold: float = 0.5,
) -> dict[str, float | int]:
    """Referring expression comprehension accuracy (Acc@threshold).

    Args:
        predictions: Per expression, the boxes parsed from the answer in reading order,
            or ``None``/empty when nothing could be parsed (counted wrong).
        truths: Per expression, its ground-truth box (or several; the best-matching counts).
        threshold: IoU needed for a hit.

    Returns:
        ``{"acc@0.5": fraction correct, "n": expressions, "parse_failures": count}``
        (the key follows ``threshold``).

    Raises:
        ValueError: On empty input, mismatched lengths or an expression with no truth.
    """
    _check_paired(predictions, truths)
    correct = failures = 0
    for index, (predicted, truth) in enumerate(zip(predictions, truths, strict=True)):
        truth_boxes = [truth] if isinstance(truth, Box) else list(truth)
        _check_has_truth(truth_boxes, index)
        if not predicted:
            failures += 1
            continue
        best = max(box_iou(predicted[0], box) for box in truth_boxes)
        correct += _hit(best, threshold)
    n = len(truths)
    return {f"acc@{threshold:g}": correct / n, "n": n, "parse_failures": failures}


def temporal_grounding(
    predictions: Sequence[Sequence[Span] | None],
    truths: Sequence[Sequence[Span]],
    thresholds: Sequence[float] = TVG_THRESHOLDS,
) -> dict[str, float | int]:
    """Temporal grounding recall at rank 1 and mean IoU (Charades-STA protocol).

    Args:
        predictions: Per query, the spans parsed from the answer in reading order, or
            ``None``/empty when nothing could be parsed (IoU 0).
        truths: Per query, its ground-truth windows; the best-matching one counts.
        thresholds: IoU thresholds m of the R@1@m keys.

    Returns:
        ``{"r1@0.3": .., "r1@0.5": .., "r1@0.7": .., "miou": .., "n": queries,
        "parse_failures": count}`` with fractions in [0, 1].

    Raises:
        ValueError: On empty input, mismatched lengths or a query with no truth.
    """
    _check_paired(predictions, truths)
    ious = []
    for index, (predicted, truth_spans) in enumerate(zip(predictions, truths, strict=True)):
        _check_has_truth(truth_spans, index)
        top1 = predicted[0] if predicted else None
        ious.append(max(span_iou(top1, s) for s in truth_spans) if top1 else 0.0)
    n = len(ious)
    metrics: dict[str, float | int] = {
        f"r1@{m:g}": sum(_hit(iou, m) for iou in ious) / n for m in thresholds
    }
    metrics["miou"] = sum(ious) / n
    metrics["n"] = n
    metrics["parse_failures"] = sum(1 for predicted in predictions if not predicted)
    return metrics


def phrase_grounding_recall(
    predictions: Sequence[Sequence[PhraseBoxes] | None],
    truths: Sequence[Sequence[PhraseBoxes]],
    threshold: float = 0.5,
) -> dict[str, float | int]:
    """Phrase grounding recall of grounded captions (Flickr30K Entities style).

    Every ground-truth phrase that has at least one box is one trial. A predicted phrase
    matches it when their normalised texts (:func:`normalize_phrase`) are equal or the
    predicted one ends with the ground-truth one: format parsers take the text before a
    box as its phrase, which can carry leading words ("with shaggy hair [..]"). The boxes
    of every matching predicted phrase are pooled. ANY-box protocol: the phrase is recalled
    when any pooled predicted box has IoU >= ``threshold`` with any of its ground-truth
    boxes. (The MERGED-box protocol, which first replaces a phrase's ground-truth boxes
    by their enclosing box, is not implemented; numbers under it are not comparable.)
    Phrases without boxes (not visible, scene-level) are not trials.

    Args:
        predictions: Per caption, ``(phrase, boxes)`` pairs parsed from the answer, or
            ``None`` when the answer could not be parsed (its phrases all count missed).
        truths: Per caption, its ground-truth ``(phrase, boxes)`` pairs.
        threshold: IoU needed for a hit.

    Returns:
        ``{"recall@0.5": fraction recalled, "n": phrase trials, "parse_failures":
        captions whose answer could not be parsed}`` (the key follows ``threshold``).

    Raises:
        ValueError: On empty input, mismatched lengths, or no phrase with a box at all.
    """
    _check_paired(predictions, truths)
    trials = recalled = 0
    for predicted, truth in zip(predictions, truths, strict=True):
        pooled = _pool_by_phrase(predicted or [])
        for phrase, truth_boxes in truth:
            if not truth_boxes:
                continue
            trials += 1
            candidates = _matching_boxes(pooled, normalize_phrase(phrase))
            recalled += any(_hit(box_iou(p, t), threshold) for p in candidates for t in truth_boxes)
    if trials == 0:
        raise ValueError("no ground-truth phrase has a box: nothing to score")
    failures = sum(1 for predicted in predictions if predicted is None)
    return {f"recall@{threshold:g}": recalled / trials, "n": trials, "parse_failures": failures}


def normalize_phrase(text: str) -> str:
    """The key that matches a predicted phrase to a ground-truth phrase.

    Case-folded, punctuation dropped, whitespace collapsed, and one leading article
    (a, an, the) removed, so "A man" from the annotation matches "the man," from a model.

    Args:
        text: A phrase as written.

    Returns:
        The normalised phrase ("" for a phrase with no word characters).
    """
    words = re.findall(r"\w+", text.casefold())
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


_ARTICLES = frozenset({"a", "an", "the"})


def _ordered(span: Span) -> Span:
    return span if span.start <= span.end else Span(span.end, span.start)


def _hit(iou: float, threshold: float) -> bool:
    return iou >= threshold - IOU_TOLERANCE


def _pool_by_phrase(pairs: Sequence[PhraseBoxes]) -> dict[str, list[Box]]:
    pooled: dict[str, list[Box]] = {}
    for phrase, boxes in pairs:
        pooled.setdefault(normalize_phrase(phrase), []).extend(boxes)
    return pooled


def _matching_boxes(pooled: dict[str, list[Box]], truth: str) -> list[Box]:
    return [
        box
        for phrase, boxes in pooled.items()
        if phrase == truth or phrase.endswith(" " + truth)
        for box in boxes
    ]


def _check_paired(predictions: Sequence[object], truths: Sequence[object]) -> None:
    if len(predictions) != len(truths):
        raise ValueError(
            f"{len(predictions)} predictions for {len(truths)} ground truths: "
            "they must be paired one to one"
        )
    if not truths:
        raise ValueError("no samples to score")


def _check_has_truth(truth: Sequence[object], index: int) -> None:
    if not truth:
        raise ValueError(f"sample {index} has no ground truth")
