"""The contract every modality fulfils, and the registry that finds modalities by name.

A modality turns a media file into decoder tokens in four steps::

    load(path)            -> Media            (decoded, untransformed, with its times/size)
    transform(media, train) -> Tensor         (one model input, e.g. (3, 336, 336) float)
    encode(x)             -> Tensor (B, N, C) (frozen encoder, no gradients)
    adapt(features)       -> Tensor (B, num_tokens, d_model)   (trainable adapter)

``gptground`` only talks to modalities through this class, so a new modality is one new
module here plus ``@register_modality``; nothing in ``gptground/`` changes.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

import torch
from torch import nn


@dataclass
class Media:
    """One decoded media item before transforms.

    Attributes:
        data: image (3, H, W) uint8; video (F, 3, H, W) uint8; audio (samples,) float32 mono.
        source: the path or URL it came from, for error messages.
        size: (width, height) in pixels of the original image or video frame.
        duration: length in seconds (video, audio).
        times: video: (F,) time of each sampled frame in s; audio: (W, 2) window start/end in s.
        sample_rate: audio samples per second of ``data``.
    """

    data: torch.Tensor
    source: str
    size: tuple[int, int] | None = None
    duration: float | None = None
    times: torch.Tensor | None = None
    sample_rate: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Modality(nn.Module, abc.ABC):
    """Base class: a frozen ``encoder`` and a trainable ``adapter`` for one kind of media.

    Subclasses set the class attributes and build ``self.encoder`` and ``self.adapter`` in
    ``__init__``. The encoder is frozen here, once: its parameters never require grad and it
    stays in eval mode (dropout off) even when the model is put in train mode.
    """

    name: ClassVar[str]  # registry name and recipe key, e.g. "image"
    record_key: ClassVar[str]  # key of the media path in annotation records, e.g. "image"
    placeholder: ClassVar[str]  # text placeholder, e.g. "<image>"
    aliases: ClassVar[tuple[str, ...]] = ()  # accepted alternative placeholders ("<audio>")
    token_prefix: ClassVar[str]  # "im" -> <im_start> <im_patch> <im_end>
    config_class: ClassVar[type]  # the typed config dataclass

    encoder: nn.Module
    adapter: nn.Module

    def __init__(self, config: Any, d_model: int):
        super().__init__()
        self.config = config
        self.d_model = d_model

    # --- tokens --------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def num_tokens(self) -> int:
        """How many decoder positions one media item of this modality fills."""

    @classmethod
    def special_tokens(cls) -> tuple[str, str, str]:
        """(start, patch, end) tokens, e.g. ("<im_start>", "<im_patch>", "<im_end>")."""
        p = cls.token_prefix
        return f"<{p}_start>", f"<{p}_patch>", f"<{p}_end>"

    # --- data ----------------------------------------------------------------------------
    @abc.abstractmethod
    def load(self, source: str | IO[bytes]) -> Media:
        """Decode a file (local path, fsspec URL or binary file object) into ``Media``."""

    @abc.abstractmethod
    def transform(self, media: Media, train: bool) -> torch.Tensor:
        """One model input from decoded media; ``train=False`` must be deterministic."""

    # --- model ---------------------------------------------------------------------------
    def freeze_encoder(self) -> None:
        """Freeze the encoder; called by subclasses at the end of ``__init__``."""
        self.encoder.requires_grad_(False)
        self.encoder.eval()

    def train(self, mode: bool = True) -> Modality:
        super().train(mode)
        self.encoder.eval()  # frozen encoders never run dropout or update norms
        return self

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen features of a batch of transformed inputs: (B, ...) -> (B, N, C).

        Float inputs are cast to the encoder's dtype: a model built in bf16 (``bf16-true``)
        still receives fp32 pixels and waveforms from ``transform``.
        """
        weight = next((p for p in self.encoder.parameters() if p.is_floating_point()), None)
        if weight is not None and x.is_floating_point():
            x = x.to(weight.dtype)
        return self.encoder(x)

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        """Trainable map from encoder features to decoder tokens: -> (B, num_tokens, d_model)."""
        return self.adapter(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapt(self.encode(x))

    # --- architecture record ---------------------------------------------------------------
    def architecture(self) -> dict[str, Any]:
        """What fixes the shapes of this modality's modules beyond its config, as JSON data.

        A saved model folder stores it next to the weights; ``build_modality(..., architecture=
        record)`` then builds the same modules from it without reading any checkpoint (the
        weights come from the folder), so a folder loads after its checkpoints are gone. A
        modality whose encoder shape is read from a checkpoint (HF config, .pth shapes)
        overrides this and accepts ``architecture`` in ``__init__``; the default, ``{}``,
        means the config alone builds every module.
        """
        return {}


_REGISTRY: dict[str, type[Modality]] = {}


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: make a modality available to recipes under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"modality {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_modality_class(name: str) -> type[Modality]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown modality {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def registered_modalities() -> list[str]:
    return sorted(_REGISTRY)


def build_modality(name: str, config: Any, d_model: int, architecture: Mapping[str, Any] | None = None) -> Modality:
    """Build a registered modality from its config (a dataclass instance or a mapping).

    With ``architecture`` (a record from ``Modality.architecture``) the encoder is built from
    that record, with untrained weights and without reading its checkpoint.
    """
    cls = get_modality_class(name)
    if not dataclasses.is_dataclass(config):
        config = cls.config_class(**dict(config or {}))
    if architecture:
        return cls(config, d_model, architecture=architecture)
    return cls(config, d_model)
