"""A whole world: determinism, decodable media, disjoint splits, manifest, overwrite."""

from __future__ import annotations

import hashlib
import json

import av
import pytest
import soundfile as sf
from PIL import Image
from synth_fixtures import all_files, tiny_config

from gptground.synth import (
    SPLITS,
    STAGE_TASKS,
    ManifestError,
    generate_world,
    read_jsonl,
    read_manifest,
)
from gptground.synth import generate as generate_module


def _records(manifest, split=None):
    return [(a, r) for a in manifest.files(split=split) for r in read_jsonl(manifest.root / a.path)]


def test_same_seed_same_bytes_whatever_the_workers(tiny_world, tmp_path):
    manifest, _ = tiny_world
    again = generate_world(tmp_path / "again", tiny_config(workers=2), progress=False)
    first, second = all_files(manifest.root), all_files(again.root)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_another_seed_another_world(tiny_world, tmp_path):
    manifest, _ = tiny_world
    other = generate_world(tmp_path / "other", tiny_config(seed=1), progress=False)
    a, b = all_files(manifest.root), all_files(other.root)
    shared = a.keys() & b.keys()  # audio file names differ where the format choice differs
    assert len(shared) > 0.5 * len(a) and all(a[k] != b[k] for k in shared)


def test_every_task_split_and_count_is_in_the_manifest(tiny_world):
    manifest, config = tiny_world
    for split in SPLITS:
        for task, n in config.counts(split).items():
            files = manifest.files(task=task, split=split)
            assert len(files) == (1 if n else 0), (task, split)
            if n:
                assert files[0].records == n == len(read_jsonl(manifest.root / files[0].path))
                assert files[0].stage == next(s for s, tasks in STAGE_TASKS.items() if task in tasks)
    reread = read_manifest(manifest.root)
    assert reread.annotations == manifest.annotations and reread.media == manifest.media
    assert json.loads((manifest.root / "manifest.json").read_text())["media_root"] == "."
    with pytest.raises(ManifestError, match="task='rec' split='nope'"):
        manifest.path("rec", "nope")


def test_every_record_media_exists_and_decodes(tiny_world):
    manifest, _ = tiny_world
    for annotation, record in _records(manifest):
        assert record["id"].startswith(f"{annotation.task}-{annotation.split}-")
        target = record.get("target", {})
        if "image" in record:
            with Image.open(manifest.root / record["image"]) as image:
                image.load()
                assert image.mode == "RGB" and list(image.size) == target.get("image_size", list(image.size))
        if "video" in record:
            with av.open(str(manifest.root / record["video"])) as container:
                assert sum(1 for _ in container.decode(video=0)) >= 16
        if "sound" in record:
            samples, sr = sf.read(manifest.root / record["sound"], dtype="float32")
            assert len(samples) > 0 and sr >= 16000


def test_splits_share_no_record_file_or_content(tiny_world):
    manifest, _ = tiny_world
    ids, paths, hashes = {}, {}, {}
    for split in SPLITS:
        records = [r for _, r in _records(manifest, split)]
        ids[split] = {r["id"] for r in records}
        paths[split] = {r[k] for r in records for k in ("image", "video", "sound") if k in r}
        hashes[split] = {hashlib.sha256((manifest.root / p).read_bytes()).hexdigest() for p in paths[split]}
        assert all(p.split("/")[1] == split for p in paths[split])
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not ids[a] & ids[b] and not paths[a] & paths[b] and not hashes[a] & hashes[b]


def test_only_val_and_test_records_carry_targets(tiny_world):
    manifest, _ = tiny_world
    for annotation, record in _records(manifest):
        assert ("target" in record) == (annotation.split != "train")


def test_existing_world_needs_overwrite(tmp_path):
    config = tiny_config()
    generate_world(tmp_path, config, progress=False)
    stale = tmp_path / "images" / "train" / "stale.png"
    stale.write_bytes(b"old")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_world(tmp_path, config, progress=False)
    generate_world(tmp_path, config, progress=False, overwrite=True)
    assert not stale.exists() and keep.read_text() == "mine"


def test_missing_espeak_is_reported_and_no_word_is_spoken(tmp_path, monkeypatch):
    monkeypatch.setattr(generate_module, "espeak_available", lambda: False)
    manifest = generate_world(tmp_path, tiny_config(), progress=False)
    assert "espeak-ng" in manifest.skipped["audio.events.spoken_word"]
    for task in ("audio_caption", "audio_tg", "audio_dialogue"):
        for record in read_jsonl(manifest.path(task, "train")):
            assert "word" not in json.dumps(record["conversations"]) and "saying" not in json.dumps(record)
