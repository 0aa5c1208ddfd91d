"""Frozen-encoder features computed once per media file and reused by every stage and epoch.

Encoders never train, and eval transforms are deterministic, so a media file's encoder
output is a constant of (encoder weights, modality config, file). The store keeps one
safetensors file per modality, named by a fingerprint of the encoder's weights and config,
so a changed encoder never reads stale features. Features and the media metadata the codecs
need live in that one file (metadata as small tensors, ``<key>.meta``), written aside and
renamed in: a kill mid-save leaves the previous file, never a mismatched pair. Stores of
older versions (features + a ``.json`` of metadata, written in two steps) are still read;
one found torn (the two disagree) or unreadable is dropped with a warning and rebuilt. With features cached, a training step
loads a few KB per sample instead of decoding and encoding the file; the price is that
random train transforms are off for cached modalities (eval transforms are used).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gptground.data.readers import resolve_media_path
from modalities import Media, MediaError, Modality

log = logging.getLogger(__name__)

META_SUFFIX = ".meta"  # tensor key of a source's metadata: float64 [width, height, duration], NaN = none


def encoder_fingerprint(modality: Modality) -> str:
    """12 hex digits over the modality's config and its frozen encoder's weights."""
    h = hashlib.sha1(modality.name.encode())
    h.update(json.dumps(dataclasses.asdict(modality.config), sort_keys=True, default=str).encode())
    for key, tensor in sorted(modality.encoder.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class CachedMeta:
    """What the codecs need from the media (see processor.MediaMeta), stored as JSON."""

    size: tuple[int, int] | None
    duration: float | None


class FeatureStore:
    """Encoder outputs keyed by (modality, media source), in ``root``.

    Args:
        root: a local folder; created on ``build``.
        modalities: name -> modality, whose frozen encoders define the features.
    """

    def __init__(self, root: str, modalities: Mapping[str, Modality]):
        self.root = root
        self.modalities = dict(modalities)
        self._fingerprints = {n: encoder_fingerprint(m) for n, m in self.modalities.items()}
        self._features: dict[str, dict[str, torch.Tensor]] = {}
        self._meta: dict[str, dict[str, CachedMeta]] = {}
        # modality -> (file, reason) of each file the last ``build`` could not load.
        self.left_out: dict[str, list[tuple[str, str]]] = {}

    def _files(self, name: str) -> tuple[str, str]:
        """(the store file, the metadata file that stores of older versions wrote beside it)."""
        stem = os.path.join(self.root, f"{name}-{self._fingerprints[name]}")
        return f"{stem}.safetensors", f"{stem}.json"

    def _key(self, source: str) -> str:
        return hashlib.sha1(os.path.normpath(str(source)).encode()).hexdigest()

    def load(self) -> FeatureStore:
        """Read whatever the root holds for these encoders (nothing if absent)."""
        for name in self.modalities:
            path, _ = self._files(name)
            if not os.path.exists(path):
                continue
            try:
                features, meta = self._read(name)
            except _TornStore as e:
                # Dropped here; ``build`` then encodes every source of this modality again.
                log.warning("feature store: %s is %s; rebuilding it", path, e)
                continue
            self._features[name], self._meta[name] = features, meta
        return self

    def _read(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, CachedMeta]]:
        """The features and metadata of one modality's store file.

        Raises:
            _TornStore: the file cannot be read, or its features and metadata disagree.
        """
        path, legacy = self._files(name)
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError) as e:
            raise _TornStore(f"unreadable ({e})") from None
        features = {k: v for k, v in tensors.items() if not k.endswith(META_SUFFIX)}
        if len(features) < len(tensors):
            meta = {k.removesuffix(META_SUFFIX): _meta_from_tensor(v) for k, v in tensors.items() if k.endswith(META_SUFFIX)}
        else:
            meta = _read_legacy_meta(legacy)
        if meta.keys() != features.keys():
            raise _TornStore(
                f"torn: {len(features)} features and {len(meta)} metadata records, "
                f"{len(features.keys() ^ meta.keys())} sources in one only (a save was interrupted)"
            )
        return features, meta

    def has(self, name: str, source) -> bool:
        return isinstance(source, (str, os.PathLike)) and self._key(source) in self._features.get(name, {})

    def get(self, name: str, source) -> tuple[torch.Tensor, CachedMeta]:
        key = self._key(source)
        return self._features[name][key], self._meta[name][key]

    @torch.no_grad()
    def build(self, sources: Mapping[str, Iterable[str]], batch_size: int = 32) -> dict[str, int]:
        """Encode every source not yet stored; returns how many were added per modality.

        Files that fail to load (any ``MediaError``: missing, cut short, undecodable) are
        left out, listed in ``left_out`` and logged: the processor then meets the file again
        and reports each of its samples as skipped, as it would without a store.
        """
        self.load()
        os.makedirs(self.root, exist_ok=True)
        self._remove_killed_saves()
        added = {}
        self.left_out = {}
        for name, paths in sources.items():
            todo = sorted({str(p) for p in paths if not self.has(name, p)})
            added[name] = self._encode_all(name, todo, batch_size)
        bad = {name: len(files) for name, files in self.left_out.items() if files}
        if bad:
            log.warning("feature store: %s media files could not be loaded and are not cached; "
                        "their samples will be skipped and counted", bad)
        return added

    def _encode_all(self, name: str, paths: list[str], batch_size: int) -> int:
        if not paths:
            return 0
        modality = self.modalities[name]  # encode() runs the frozen encoder, always in eval mode
        features = self._features.setdefault(name, {})
        meta = self._meta.setdefault(name, {})
        left_out = self.left_out.setdefault(name, [])
        added = 0
        for start in range(0, len(paths), batch_size):
            loaded = []
            for path in paths[start : start + batch_size]:
                try:
                    loaded.append((path, modality.load(path)))
                except MediaError as e:  # the error names the file
                    log.warning("feature store: skipping %s", e)
                    left_out.append((path, e.reason))
            if not loaded:
                continue
            added += len(loaded)
            x = torch.stack([modality.transform(m, train=False) for _, m in loaded])
            out = modality.encode(x)
            for (path, media), f in zip(loaded, out):
                # fp32 whatever the encoder's dtype: the cache is shared by stages of any precision.
                features[self._key(path)] = f.float().contiguous().clone()
                meta[self._key(path)] = _meta_of(media)
        self._save(name)
        return added

    def _remove_killed_saves(self) -> None:
        """Delete ``<store file>.tmp-<pid>`` files of these encoders whose process is gone
        (a save killed mid-write; each is a whole copy of a store)."""
        for name in self.modalities:
            prefix = os.path.basename(self._files(name)[0]) + ".tmp-"
            for entry in os.listdir(self.root):
                pid = entry.removeprefix(prefix)
                if entry.startswith(prefix) and pid.isdigit() and not _process_exists(int(pid)):
                    log.warning("feature store: removing %s, left by a save that was killed", entry)
                    os.remove(os.path.join(self.root, entry))

    def _save(self, name: str) -> None:
        """One file, written aside and renamed in: readers see the old store or the new one."""
        path, legacy = self._files(name)
        tmp = f"{path}.tmp-{os.getpid()}"
        tensors = dict(self._features[name])
        tensors.update({k + META_SUFFIX: _meta_to_tensor(v) for k, v in self._meta[name].items()})
        try:
            save_file(tensors, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        if os.path.exists(legacy):
            os.remove(legacy)  # the metadata now lives in the store file


def _process_exists(pid: int) -> bool:
    """Whether ``pid`` runs on this machine (its save may be in progress)."""
    if pid == os.getpid():
        return False  # this process is not saving while it cleans
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _TornStore(Exception):
    """A store file that cannot be used as it is (the message says why)."""


def _meta_to_tensor(meta: CachedMeta) -> torch.Tensor:
    width, height = meta.size if meta.size else (math.nan, math.nan)
    duration = math.nan if meta.duration is None else meta.duration
    return torch.tensor([width, height, duration], dtype=torch.float64)


def _meta_from_tensor(t: torch.Tensor) -> CachedMeta:
    width, height, duration = t.tolist()
    size = None if math.isnan(width) else (int(width), int(height))
    return CachedMeta(size, None if math.isnan(duration) else duration)


def _read_legacy_meta(path: str) -> dict[str, CachedMeta]:
    """The ``.json`` metadata of an older store ({} when missing: the pair is then torn)."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise _TornStore(f"paired with an unreadable {path} ({e})") from None
    return {k: CachedMeta(tuple(v[0]) if v[0] else None, v[1]) for k, v in raw.items()}


def _meta_of(media: Media) -> CachedMeta:
    return CachedMeta(tuple(media.size) if media.size else None, media.duration)


def media_sources(record_sets: Iterable[Iterable], modalities: Mapping[str, Modality], roots: Mapping[str, str]) -> dict[str, list[str]]:
    """Modality name -> every media path the records name, resolved as the processor does."""
    by_key = {m.record_key: name for name, m in modalities.items()}
    sources: dict[str, list[str]] = {name: [] for name in modalities}
    for records in record_sets:
        for record in records:
            for key, path in record.media.items():
                if key in by_key:
                    sources[by_key[key]].append(resolve_media_path(roots.get(key), path))
    return sources
