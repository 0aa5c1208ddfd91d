"""Where a world's files go, JSONL annotation files, and the world's manifest.

Layout of a world folder (all paths inside records and the manifest are relative to it,
so the folder can be moved; point every modality root at the folder itself)::

    images/{split}/img-000000.png          images for image tasks
    images/{split}/sl-000000.png           images of sound_loc pairs
    videos/{split}/vid-000000.mp4
    audio/{split}/aud-000000.wav|.flac     clips for audio tasks
    audio/{split}/sl-000000.wav|.flac      sounds of sound_loc pairs
    annotations/stage{1,2,3}/{task}.{split}.jsonl
    manifest.json
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
MEDIA_DIRS = {"image": "images", "video": "videos", "sound": "audio"}
OWNED_NAMES = ("images", "videos", "audio", "annotations", MANIFEST_NAME)  # what a rerun may replace


class ManifestError(ValueError):
    """A manifest file is missing keys or names no such annotation file."""


def media_path(modality: str, split: str, stem: str, ext: str) -> str:
    """'images/train/img-000001.png': a media path relative to the world folder."""
    return f"{MEDIA_DIRS[modality]}/{split}/{stem}.{ext}"


def annotation_path(stage: int, task: str, split: str) -> str:
    """'annotations/stage2/rec.test.jsonl': an annotation path relative to the world folder."""
    return f"annotations/stage{stage}/{task}.{split}.jsonl"


def write_jsonl(path: Path, records: list[dict]) -> None:
    """One JSON object per line, keys in insertion order, UTF-8; same records => same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL file; a bad line raises ValueError naming the file and line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from e
    return records


@dataclass(frozen=True)
class AnnotationFile:
    """One annotation file: which stage, task and split it holds, where, and how many records."""

    stage: int
    task: str
    split: str
    path: str
    records: int


@dataclass
class WorldManifest:
    """What a generated world holds; written as ``manifest.json`` in the world folder."""

    root: Path
    """The world folder (not written to the file: paths in it are relative to its folder)."""
    seed: int
    annotations: list[AnnotationFile]
    media: dict[str, int]
    """Files per media folder, e.g. {'images/train': 2000}."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Parts of the config that this machine could not make, and why."""
    seconds: float = 0.0
    samples_per_second: float = 0.0
    config: dict = field(default_factory=dict)

    def files(self, stage: int | None = None, task: str | None = None,
              split: str | None = None) -> list[AnnotationFile]:
        """Annotation files matching every given filter."""
        return [a for a in self.annotations
                if (stage is None or a.stage == stage) and (task is None or a.task == task)
                and (split is None or a.split == split)]

    def path(self, task: str, split: str) -> Path:
        """Absolute path of the annotation file of ``task`` in ``split``."""
        found = self.files(task=task, split=split)
        if not found:
            have = sorted({(a.task, a.split) for a in self.annotations})
            raise ManifestError(f"{self.root / MANIFEST_NAME}: no annotation file for task={task!r} "
                                f"split={split!r}; it has {have}")
        return self.root / found[0].path

    def to_dict(self) -> dict:
        return {
            "format": "groundinggpt",
            "media_root": ".",
            "seed": self.seed,
            "annotations": [asdict(a) for a in self.annotations],
            "media": self.media,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "samples_per_second": round(self.samples_per_second, 1),
            "config": self.config,
        }

    def write(self) -> Path:
        """Write ``manifest.json`` into the world folder; returns its path."""
        path = self.root / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def read_manifest(world_dir: str | Path) -> WorldManifest:
    """The manifest of a world folder (written by ``generate_world``)."""
    root = Path(world_dir)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest; generate the world first (gptground data synth)")
    data = json.loads(path.read_text(encoding="utf-8"))
    try:
        annotations = [AnnotationFile(**a) for a in data["annotations"]]
        return WorldManifest(root=root, seed=data["seed"], annotations=annotations, media=data["media"],
                             skipped=data.get("skipped", {}), seconds=data.get("seconds", 0.0),
                             samples_per_second=data.get("samples_per_second", 0.0), config=data.get("config", {}))
    except (KeyError, TypeError) as e:
        raise ManifestError(f"{path}: malformed manifest ({e})") from e
