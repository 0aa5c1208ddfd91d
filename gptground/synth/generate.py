"""Generating a whole synthetic world: media, annotation files per stage/task/split, manifest.

Scenes are grouped in four pools (image, video, audio, sound_loc). Tasks of one modality
share their split's pool: the first ``n`` scenes of the pool serve a task with ``n``
records, so e.g. the stage-1 image captions describe images that stage 2 asks about, as
in GroundingGPT's own data. Splits never share a scene or a file.

Every scene draws from its own generator, seeded by ``(seed, split, pool, index)``, and
its text from one seeded by the task as well: the output does not depend on the order of
work or on the number of worker processes.
"""

from __future__ import annotations

import functools
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gptground.synth.audio import sample_audio_scene, write_audio
from gptground.synth.config import SPLITS, TASK_STAGE, SynthConfig, SynthConfigError
from gptground.synth.conversations import TASK_TEXT, build_record
from gptground.synth.images import sample_image_scene, write_image
from gptground.synth.sound_source import (
    sample_sound_loc_image,
    sample_sound_loc_scene,
    write_sound_loc,
)
from gptground.synth.speech import ESPEAK, espeak_available
from gptground.synth.videos import sample_video_scene, write_video
from gptground.synth.writer import (
    OWNED_NAMES,
    AnnotationFile,
    WorldManifest,
    annotation_path,
    media_path,
    write_jsonl,
)

POOL_TASKS: dict[str, tuple[str, ...]] = {
    "image": ("image_caption", "rec", "grounded_caption", "image_dialogue"),
    "video": ("video_caption", "video_tg", "video_dialogue"),
    "audio": ("audio_caption", "audio_tg", "audio_dialogue"),
    "sound_loc": ("sound_loc", "sound_source_caption"),
}
# Media a task's records carry, where not all of its scene's.
_TASK_MEDIA = {"sound_source_caption": ("sound",)}
# Fixed codes that seed the generators: renaming a split or pool must not change a world.
_SPLIT_CODE = {"train": 1, "val": 2, "test": 3}
_POOL_CODE = {"image": 1, "video": 2, "audio": 3, "sound_loc": 4}
_TASK_CODE = {
    "image_caption": 100, "video_caption": 101, "audio_caption": 102, "rec": 103, "grounded_caption": 104,
    "video_tg": 105, "audio_tg": 106, "sound_loc": 107, "image_dialogue": 108, "video_dialogue": 109,
    "audio_dialogue": 110, "sound_source_caption": 111,
}
_IMAGE_CODE = 99  # seeds the image a group of sound_loc scenes shares


@dataclass(frozen=True)
class _RenderContext:
    """What a worker needs to render one scene (picklable)."""

    config: SynthConfig
    root: Path
    audio_kinds: tuple[str, ...]


def generate_world(out_dir: str | Path, config: SynthConfig, progress: bool = True,
                   overwrite: bool = False) -> WorldManifest:
    """Generate the world described by ``config`` into ``out_dir``.

    Args:
        out_dir: the world folder; created if missing.
        progress: show a tqdm bar and a closing samples/s line.
        overwrite: replace a previous world's folders (images/, videos/, audio/,
            annotations/, manifest.json) in ``out_dir``; other files are left alone.

    Returns:
        The manifest, also written to ``out_dir/manifest.json``.

    Raises:
        FileExistsError: ``out_dir`` holds a previous world and ``overwrite`` is False.
        SynthConfigError: no audio event kind can be made on this machine.
    """
    start = time.perf_counter()
    root = Path(out_dir)
    _prepare_folder(root, overwrite)
    audio_kinds, skipped = _audio_kinds(config)
    ctx = _RenderContext(config=config, root=root, audio_kinds=audio_kinds)
    scenes = _render_all(ctx, _jobs(config), progress)
    annotations = _write_annotations(ctx, scenes)
    seconds = time.perf_counter() - start
    manifest = WorldManifest(
        root=root, seed=config.seed, annotations=annotations, media=_media_counts(scenes), skipped=skipped,
        seconds=seconds, samples_per_second=len(scenes) / max(seconds, 1e-9), config=asdict(config),
    )
    manifest.write()
    if progress:
        tqdm.write(f"synthetic world: {len(scenes)} scenes, {sum(a.records for a in annotations)} records "
                   f"in {seconds:.1f} s ({manifest.samples_per_second:.0f} samples/s) -> {root}")
    return manifest


def _prepare_folder(root: Path, overwrite: bool) -> None:
    existing = [root / name for name in OWNED_NAMES if (root / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{root} already holds a world ({existing[0].name}); "
                              "pass overwrite=True (CLI: --overwrite) or choose another folder")
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _audio_kinds(config: SynthConfig) -> tuple[tuple[str, ...], dict[str, str]]:
    """The audio event kinds this machine can make, and why any configured kind is left out."""
    kinds = config.audio.events
    if "spoken_word" not in kinds or espeak_available():
        return kinds, {}
    kinds = tuple(k for k in kinds if k != "spoken_word")
    if not kinds:
        raise SynthConfigError(f"audio.events: only spoken_word is configured and {ESPEAK} is not on PATH")
    return kinds, {"audio.events.spoken_word": f"{ESPEAK} is not on PATH: this world has no spoken words"}


def _jobs(config: SynthConfig) -> list[tuple[str, str, int]]:
    """(pool, split, index) of every scene: a pool holds as many as its largest task needs."""
    jobs = []
    for split in SPLITS:
        counts = config.counts(split)
        for pool, tasks in POOL_TASKS.items():
            jobs += [(pool, split, i) for i in range(max(counts[t] for t in tasks))]
    return jobs


def _render_all(ctx: _RenderContext, jobs: list[tuple[str, str, int]], progress: bool) -> dict:
    """Render every job's media; returns {(pool, split, index): (scene, media paths)}."""
    for split in SPLITS:
        for modality_dir in ("images", "videos", "audio"):
            (ctx.root / modality_dir / split).mkdir(parents=True, exist_ok=True)
    render = functools.partial(_render_job, ctx)
    results = {}
    with tqdm(total=len(jobs), desc="synthetic world", unit="sample", disable=not progress) as bar:
        for job, output in zip(jobs, _map(render, jobs, ctx.config.workers)):
            results[job] = output
            bar.update()
    return results


def _map(fn, items: list, workers: int):
    """``fn`` over ``items`` in order, in ``workers`` processes (in this one if 1)."""
    if workers == 1:
        yield from map(fn, items)
        return
    # spawn, not fork: safe even when the caller has started threads (torch, tokenizers)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(fn, items, chunksize=16)


def _render_job(ctx: _RenderContext, job: tuple[str, str, int]):
    """Sample and write one scene; returns (scene, {modality key: relative media path})."""
    pool, split, index = job
    rng = np.random.default_rng([ctx.config.seed, _SPLIT_CODE[split], _POOL_CODE[pool], index])
    return _RENDERERS[pool](ctx, rng, split, f"{index:06d}")


def _render_image(ctx: _RenderContext, rng: np.random.Generator, split: str, number: str):
    scene = sample_image_scene(rng, ctx.config.image)
    media = {"image": media_path("image", split, f"img-{number}", "png")}
    write_image(scene, ctx.root / media["image"])
    return scene, media


def _render_video(ctx: _RenderContext, rng: np.random.Generator, split: str, number: str):
    scene = sample_video_scene(rng, ctx.config.video, ctx.config.image)
    media = {"video": media_path("video", split, f"vid-{number}", "mp4")}
    write_video(scene, ctx.root / media["video"], ctx.config.video.codec)
    return scene, media


def _render_audio(ctx: _RenderContext, rng: np.random.Generator, split: str, number: str):
    scene = sample_audio_scene(rng, ctx.config.audio, ctx.audio_kinds)
    media = {"sound": media_path("sound", split, f"aud-{number}", scene.fmt)}
    write_audio(scene, ctx.root / media["sound"])
    return scene, media


def _render_sound_loc(ctx: _RenderContext, rng: np.random.Generator, split: str, number: str):
    """Train scenes come in groups of ``sounds_per_image`` that share an image, whose shapes
    sound in turn; the group's first scene writes the image. Val/test scenes: one each."""
    per_image = ctx.config.audio.sound_loc_sounds_per_image if split == "train" else 1
    group, member = divmod(int(number), per_image)
    image = source = None  # one scene per image: drawn from the scene's own seed, as before
    if per_image > 1:
        image_rng = np.random.default_rng([ctx.config.seed, _SPLIT_CODE[split], _POOL_CODE["sound_loc"], group, _IMAGE_CODE])
        image = sample_sound_loc_image(image_rng, ctx.config.image)
        order = image_rng.permutation(len(image.shapes))
        source = int(order[member % len(order)])
    scene = sample_sound_loc_scene(rng, ctx.config.image, ctx.config.audio, image, source)
    media = {"image": media_path("image", split, f"sl-{group:06d}", "png"),
             "sound": media_path("sound", split, f"sl-{number}", scene.fmt)}
    write_sound_loc(scene, ctx.root / media["image"] if member == 0 else None, ctx.root / media["sound"])
    return scene, media


_RENDERERS = {"image": _render_image, "video": _render_video, "audio": _render_audio, "sound_loc": _render_sound_loc}


def _write_annotations(ctx: _RenderContext, scenes: dict) -> list[AnnotationFile]:
    """One JSONL file per (task, split) with records; val/test records carry their target."""
    files = []
    for split in SPLITS:
        counts = ctx.config.counts(split)
        for pool, tasks in POOL_TASKS.items():
            for task in tasks:
                if counts[task] == 0:
                    continue
                records = [_record(ctx, task, split, pool, i, *scenes[(pool, split, i)]) for i in range(counts[task])]
                rel = annotation_path(TASK_STAGE[task], task, split)
                write_jsonl(ctx.root / rel, records)
                files.append(AnnotationFile(stage=TASK_STAGE[task], task=task, split=split, path=rel,
                                            records=len(records)))
    return sorted(files, key=lambda f: (f.stage, f.task, SPLITS.index(f.split)))


def _record(ctx: _RenderContext, task: str, split: str, pool: str, index: int, scene, media: dict) -> dict:
    rng = np.random.default_rng([ctx.config.seed, _SPLIT_CODE[split], _POOL_CODE[pool], index, _TASK_CODE[task]])
    dialogue = TASK_TEXT[task](scene, rng)
    media = {k: v for k, v in media.items() if k in _TASK_MEDIA.get(task, media)}
    return build_record(f"{task}-{split}-{index:06d}", media, dialogue, with_target=split != "train")


def _media_counts(scenes: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    paths = {path for _, media in scenes.values() for path in media.values()}  # shared images once
    for path in paths:
        folder = path.rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
    return dict(sorted(counts.items()))
