"""Evaluation: grounding metrics, benchmark readers and scoring of predictions files.

- :mod:`gptground.eval.metrics`: pure functions (IoU, REC Acc@0.5, R@1 at IoU 0.3/0.5/0.7
  and mIoU, phrase grounding recall) that implement the protocols of SEED_SYSTEMS.md;
- :mod:`gptground.eval.benchmarks`: readers for RefCOCO/+/g, Flickr30K Entities,
  Charades-STA, DiDeMo, ActivityNet Captions, VGG-SS and Clotho in their published layouts;
- :mod:`gptground.eval.score`: ``gptground score``, metrics from a predictions JSONL file.
"""

from gptground.eval.errors import EvalInputError
from gptground.eval.metrics import (
    box_iou,
    normalize_phrase,
    phrase_grounding_recall,
    rec_accuracy,
    span_iou,
    temporal_grounding,
)
from gptground.eval.score import score_file

__all__ = [
    "EvalInputError",
    "box_iou",
    "normalize_phrase",
    "phrase_grounding_recall",
    "rec_accuracy",
    "score_file",
    "span_iou",
    "temporal_grounding",
]
