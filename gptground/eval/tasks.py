"""The evaluation tasks and what their answers hold: plain constants, no heavy imports.

Kept apart from :mod:`gptground.eval.queries` so that ``gptground eval --help`` can list
the tasks without importing torch.
"""

from __future__ import annotations

TASK_VALUES = {"rec": "boxes", "sound_loc": "boxes", "video_tg": "spans", "audio_tg": "spans", "tvg": "spans"}
"""Evaluation task -> what its answers hold."""
EVAL_TASKS = tuple(TASK_VALUES)
SCORE_TASKS = {"boxes": "rec", "spans": "tvg"}
"""What answers hold -> the task name of ``gptground score``."""
CLIP_MODALITY = {"video_tg": "video", "tvg": "video", "audio_tg": "audio"}
"""Span task -> the modality whose duration the spans are relative to."""


def task_values(task: str) -> str:
    """ "boxes" or "spans" for an evaluation task; ValueError names the tasks otherwise."""
    if task not in TASK_VALUES:
        raise ValueError(f"task must be one of {EVAL_TASKS}, got {task!r}")
    return TASK_VALUES[task]
