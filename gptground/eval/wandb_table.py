"""A Weights & Biases table of evaluation predictions, each row with its picture.

Boxes are drawn on the image (predicted red, true green); spans as bars over the clip's
time axis under keyframes (video) or the waveform (audio), see :mod:`gptground.viz`. The
run is online with ``WANDB_API_KEY`` set and offline otherwise (or when ``WANDB_MODE``
says so), writing under ``<out>/wandb/``.
"""

from __future__ import annotations

from collections.abc import Sequence

import wandb
from PIL import Image

from gptground.config import WandbConfig
from gptground.eval.queries import CLIP_MODALITY, EvalItem
from gptground.grounding.types import Box, Span
from gptground.training.trainer import wandb_mode
from gptground.viz import audio_timeline, box_picture, video_timeline

COLUMNS = ["id", "prompt", "prediction", "truth", "iou", "picture"]


def prediction_picture(prediction, item: EvalItem) -> Image.Image:
    """The picture of one prediction (a ``gptground.eval.run.Prediction``) and its item."""
    media = item.query.media
    if prediction.task in CLIP_MODALITY:
        predicted = [Span(*v) for v in prediction.values]
        truth = [Span(*t) for t in prediction.truths]
        draw = video_timeline if CLIP_MODALITY[prediction.task] == "video" else audio_timeline
        return draw(media[CLIP_MODALITY[prediction.task]], predicted, truth, title=prediction.prompt)
    return box_picture(media["image"], [Box(*v) for v in prediction.values], [Box(*t) for t in prediction.truths])


def log_predictions(
    predictions: Sequence,
    items: Sequence[EvalItem],
    metrics: dict[str, float | int],
    out: str,
    project: str = "gptground",
    rows: int = 16,
) -> str:
    """Log metrics and a table of the first ``rows`` predictions to a new W&B run.

    Args:
        predictions: ``Prediction`` s in the order of ``items``.
        items: the evaluated items (their media are drawn).
        metrics: logged as ``eval/<name>``.
        out: the evaluation's output folder; the run writes under ``out/wandb``.
        project: W&B project.
        rows: how many predictions get a row (each draws a picture).

    Returns:
        The run's local folder.
    """
    mode = wandb_mode(WandbConfig(enabled=True, project=project))
    run = wandb.init(project=project, dir=out, mode=mode, job_type="eval", config={"n": len(items)})
    try:
        table = wandb.Table(columns=COLUMNS)
        for prediction, item in list(zip(predictions, items))[:rows]:
            if prediction.error is not None:  # its media failed to load: nothing to draw
                table.add_data(prediction.id, prediction.prompt, f"error: {prediction.error}",
                               str(prediction.truths), prediction.iou, None)
                continue
            picture = wandb.Image(prediction_picture(prediction, item))
            table.add_data(
                prediction.id, prediction.prompt, prediction.text, str(prediction.truths), prediction.iou, picture
            )
        run.log({"eval/predictions": table, **{f"eval/{k}": v for k, v in metrics.items()}})
        return run.dir
    finally:
        run.finish()
