"""Frozen-encoder features computed once per media file and reused by every stage and epoch.

Encoders never train, and eval transforms are deterministic, so a media file's encoder
output is a constant of (encoder weights, modality config, file). The store keeps one
safetensors file per modality, named by a fingerprint of the encoder's weights and config,
so a changed encoder never reads stale features. With features cached, a training step
loads a few KB per sample instead of decoding and encoding the file; the price is that
random train transforms are off for cached modalities (eval transforms are used).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping

import torch
from safetensors.torch import load_file, save_file

from gptground.data.readers import resolve_media_path
from modalities import Media, MediaError, Modality

log = logging.getLogger(__name__)


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
        stem = os.path.join(self.root, f"{name}-{self._fingerprints[name]}")
        return f"{stem}.safetensors", f"{stem}.json"

    def _key(self, source: str) -> str:
        return hashlib.sha1(os.path.normpath(str(source)).encode()).hexdigest()

    def load(self) -> FeatureStore:
        """Read whatever the root holds for these encoders (nothing if absent)."""
        for name in self.modalities:
            tensors, meta = self._files(name)
            if os.path.exists(tensors) and os.path.exists(meta):
                self._features[name] = load_file(tensors)
                with open(meta) as f:
                    self._meta[name] = {k: CachedMeta(tuple(v[0]) if v[0] else None, v[1]) for k, v in json.load(f).items()}
        return self

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

    def _save(self, name: str) -> None:
        tensors, meta = self._files(name)
        tmp = f".tmp-{os.getpid()}"  # written apart, then renamed: readers never see half a file
        save_file(self._features[name], tensors + tmp)
        with open(meta + tmp, "w") as f:
            json.dump({k: [list(v.size) if v.size else None, v.duration] for k, v in self._meta[name].items()}, f)
        os.replace(tensors + tmp, tensors)
        os.replace(meta + tmp, meta)


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
