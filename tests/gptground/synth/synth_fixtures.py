"""Helpers shared by the synth tests: a tiny world config and a folder snapshot."""

from __future__ import annotations

from pathlib import Path

from gptground.synth import (
    STAGE_TASKS,
    AudioWorldConfig,
    ImageWorldConfig,
    SynthConfig,
    TaskCounts,
    VideoWorldConfig,
)


def tiny_config(seed: int = 0, workers: int = 1) -> SynthConfig:
    """Every task present in every split, small media: generates in about a second."""
    all_tasks = [t for tasks in STAGE_TASKS.values() for t in tasks]
    return SynthConfig(
        seed=seed,
        train=TaskCounts(**{t: 4 for t in all_tasks}),
        val=TaskCounts(**{t: 2 for t in all_tasks}),
        test=TaskCounts(**{t: 6 for t in STAGE_TASKS[2]}),
        image=ImageWorldConfig(sizes=((64, 64), (80, 48))),  # a non-square size exercises padding
        video=VideoWorldConfig(sizes=((64, 48), (48, 48)), fps=(8, 12), durations=(2.0, 3.0)),
        audio=AudioWorldConfig(sample_rates=(16000, 22050), durations=(2.0, 3.0), sound_loc_duration=1.0),
        workers=workers,
    )


def all_files(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root`` except the manifest (it holds timings)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}
