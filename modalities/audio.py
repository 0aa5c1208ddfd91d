"""The audio modality: a sound file -> 8 decoder tokens (GroundingGPT's audio branch).

    load       file -> 16 kHz mono waveform + W window times          (audio_decode, audio_features)
    transform  W windows -> (W, 1, 128, 204) normalised log-mel        (audio_features)
    encode     frozen ImageBind-huge audio branch -> (B, W, 1024)       (imagebind_audio)
    adapt      + window positions, 2-layer Q-Former, 8 queries, Linear -> (B, 8, d_model)  (qformer)

Short files: a file shorter than a window fills every window with the whole file (all start
at 0); its features are padded at the end with 0 up to 204 frames, as ImageBind pads every
clip, and a file shorter than one 25 ms frame (even one sample) is first zero-padded to one
frame. Silence gives finite features (log of float eps), never NaN.

``preprocess: groundinggpt``: GroundingGPT feeds sound through ImageBind's
``load_and_transform_audio_data`` (``lego/serve/cli.py``, ``lego/train/train.py``), whose
filterbank, 204-frame padding, mean/std and window placement this module already follows.
What differs, and changes with the setting:

* channel 0 of a multi-channel file, not the average of the channels (ImageBind resamples
  every channel, and kaldi's ``fbank`` reads channel 0 of its input);
* window placement from the *resampled* length and sample offsets truncated
  (``imagebind_window_samples``), not from the file's duration and rounded.

Not reproduced: a file shorter than one 25 ms frame, which ImageBind's fbank refuses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from modalities.audio_decode import load_waveform
from modalities.audio_features import (
    SAMPLE_RATE,
    WINDOW_PLACEMENTS,
    imagebind_window_samples,
    window_fbanks,
    window_samples,
    window_times,
)
from modalities.base import Media, Modality, register_modality
from modalities.checkpoints import TINY
from modalities.imagebind_audio import (
    AudioEncoderDims,
    ImageBindAudioEncoder,
    build_audio_encoder,
    encoder_dims,
)
from modalities.io import MediaSource, source_name
from modalities.preprocess import GROUNDINGGPT, check_preprocess
from modalities.qformer import QFormerAdapter, QFormerConfig

RECIPE_KEY = "model.modalities.audio"
_POSITIVE_INT_FIELDS = (
    "num_windows",
    "num_mel_bins",
    "target_frames",
    "num_queries",
    "qformer_layers",
    "qformer_hidden_size",
    "qformer_heads",
    "qformer_intermediate_size",
)


@dataclass
class AudioConfig:
    """Settings of the audio modality (recipe key ``model.modalities.audio``).

    Defaults are GroundingGPT's: 3 windows of 2 s, ImageBind-huge features, a 2-layer
    Q-Former with 8 queries.
    """

    encoder: str = "imagebind_huge.pth"
    """ImageBind-huge checkpoint (``imagebind_huge.pth`` or a .safetensors copy; only its audio
    keys are read), or "tiny": a small random-weight encoder for tests and smoke runs."""
    num_windows: int = 3
    """W: windows cut from each file, each encoded to one vector."""
    window_seconds: float = 2.0
    """Length of each window in seconds."""
    window_placement: str = "imagebind"
    """"imagebind": window i starts at i * (duration - window) / W, like ImageBind's loader
    (the file's last part is in no window); "span": first window at 0, last one at the end."""
    num_mel_bins: int = 128
    """Mel bands of the log-mel features (ImageBind: 128)."""
    target_frames: int = 204
    """10 ms frames per window after cropping/padding (ImageBind: 204)."""
    fbank_mean: float = -4.268
    """Mean subtracted from the log-mel values (ImageBind's dataset statistic)."""
    fbank_std: float = 9.138
    """Standard deviation the log-mel values are divided by (ImageBind's)."""
    max_duration_seconds: float | None = 3600.0
    """Refuse longer files (the whole file is decoded); None: no limit."""
    num_queries: int = 8
    """Q-Former queries = decoder tokens per audio item."""
    qformer_layers: int = 2
    """Transformer layers of the audio Q-Former."""
    qformer_hidden_size: int = 768
    """Width of the Q-Former (BERT-base: 768)."""
    qformer_heads: int = 12
    """Attention heads of the Q-Former; must divide qformer_hidden_size."""
    qformer_intermediate_size: int = 3072
    """Feed-forward width of each Q-Former layer."""
    qformer_dropout: float = 0.1
    """Dropout inside the Q-Former while training."""
    qformer_init_std: float = 0.02
    """Std of the Q-Former's random initial weights (BERT's; see VideoConfig.adapter_init_std)."""
    max_windows: int = 8
    """Rows of the learned window position embedding (the reference has 8); >= num_windows."""
    standardize_features: bool = False
    """Standardise each channel of the window embeddings before the Q-Former, with statistics
    learnt in training (``FeatureStandardizer``). Off in the reference; the tiny random
    encoder needs it (its embeddings are 98 % one shared vector)."""
    preprocess: str | None = None
    """Input pipeline, "default" or "groundinggpt" (modalities/preprocess.py); set from the
    recipe's ``model.preprocess``, None = not set = "default"."""
    recipe_key: str = RECIPE_KEY
    """Where this section sits in the recipe, for error messages."""

    def __post_init__(self) -> None:
        check_preprocess(self.preprocess, self.key("preprocess"))
        self._require(
            "window_placement",
            self.preprocess != GROUNDINGGPT or self.window_placement == "imagebind",
            "must be 'imagebind' with preprocess 'groundinggpt' (GroundingGPT's windows)",
        )
        for name in _POSITIVE_INT_FIELDS:
            self._require(name, getattr(self, name) >= 1, "must be >= 1")
        self._require("encoder", bool(self.encoder), f"must be a checkpoint path or {TINY!r}")
        self._require("window_seconds", self.window_seconds > 0, "must be > 0")
        self._require(
            "window_placement",
            self.window_placement in WINDOW_PLACEMENTS,
            f"must be one of {WINDOW_PLACEMENTS}",
        )
        self._require("max_windows", self.max_windows >= self.num_windows, "must be >= num_windows")
        self._require("fbank_std", self.fbank_std > 0, "must be > 0")
        patch = encoder_dims(self.encoder).patch_size
        for name in ("num_mel_bins", "target_frames"):
            self._require(name, getattr(self, name) >= patch, f"must be >= the patch size {patch}")
        limit = self.max_duration_seconds
        self._require("max_duration_seconds", limit is None or limit > 0, "must be > 0 or null")
        self._require(
            "qformer_hidden_size",
            self.qformer_hidden_size % self.qformer_heads == 0,
            "must be divisible by qformer_heads",
        )
        self._require("qformer_dropout", 0.0 <= self.qformer_dropout < 1.0, "must be in [0, 1)")
        self._require("qformer_init_std", self.qformer_init_std > 0, "must be > 0")

    def _require(self, field: str, ok: bool, rule: str) -> None:
        if not ok:
            raise ValueError(f"AudioConfig.{field} {rule}, got {getattr(self, field)!r}")

    def key(self, field_name: str) -> str:
        """The dotted recipe key of one field, e.g. ``model.modalities.audio.encoder``."""
        return f"{self.recipe_key}.{field_name}"

    @classmethod
    def tiny(cls, **overrides) -> AudioConfig:
        """Tiny random-weight encoder and Q-Former: seconds on a CPU (tests, smoke runs)."""
        sizes = dict(
            encoder=TINY,
            qformer_hidden_size=32,
            qformer_heads=2,
            qformer_intermediate_size=64,
        )
        return cls(**{**sizes, **overrides})

    def qformer_config(self, encoder_width: int) -> QFormerConfig:
        """The Q-Former adapter's config, reading ``encoder_width``-d window embeddings."""
        return QFormerConfig(
            num_layers=self.qformer_layers,
            hidden_size=self.qformer_hidden_size,
            num_heads=self.qformer_heads,
            intermediate_size=self.qformer_intermediate_size,
            num_queries=self.num_queries,
            encoder_hidden_size=encoder_width,
            max_positions=self.max_windows,
            dropout=self.qformer_dropout,
            init_std=self.qformer_init_std,
            standardize_inputs=self.standardize_features,
        )


@register_modality
class AudioModality(Modality):
    """Sound files to decoder tokens through ImageBind's frozen audio branch and a Q-Former.

    ``transform`` is the same in training and evaluation and has no randomness: the
    reference uses no audio augmentation, and window positions are part of ``load`` so that
    ``Media.times`` says exactly which seconds each token group saw.
    """

    name = "audio"
    record_key = "sound"
    placeholder = "<sound>"
    aliases = ("<audio>",)
    token_prefix = "so"
    config_class = AudioConfig

    config: AudioConfig

    def __init__(self, config: AudioConfig, d_model: int, architecture: Mapping[str, Any] | None = None):
        super().__init__(config, d_model)
        if architecture:  # a saved folder's record: the shape only, weights come from the folder
            self.encoder = ImageBindAudioEncoder(
                AudioEncoderDims(**dict(architecture["encoder"])), config.num_mel_bins, config.target_frames
            )
        else:
            self.encoder = build_audio_encoder(
                config.encoder, config.key("encoder"), config.num_mel_bins, config.target_frames
            )
        self.adapter = QFormerAdapter(config.qformer_config(self.encoder.dims.out_dim), d_model)
        self.freeze_encoder()

    @property
    def num_tokens(self) -> int:
        return self.config.num_queries

    def architecture(self) -> dict[str, Any]:
        """{"encoder": the ImageBind audio branch's dims}."""
        return {"encoder": dataclasses.asdict(self.encoder.dims)}

    def load(self, source: MediaSource) -> Media:
        """Decode to 16 kHz mono and place the windows.

        Returns:
            Media with ``data`` (N,) float32 at 16 kHz, ``duration`` in s, ``times`` (W, 2)
            [start, end] in s of the sound each window holds, ``sample_rate`` 16000.
        """
        c = self.config
        if c.preprocess == GROUNDINGGPT:
            return self._load_like_imagebind(source)
        wave, duration = load_waveform(source, SAMPLE_RATE, c.max_duration_seconds)
        times = window_times(duration, c.num_windows, c.window_seconds, c.window_placement)
        return Media(data=wave, source=source_name(source), duration=duration, times=times, sample_rate=SAMPLE_RATE)

    def _load_like_imagebind(self, source: MediaSource) -> Media:
        """Channel 0, windows cut as ImageBind cuts them; ``meta["window_samples"]`` holds
        their exact (W, 2) [first, end) samples, ``times`` the same in seconds (end clipped)."""
        c = self.config
        wave, duration = load_waveform(source, SAMPLE_RATE, c.max_duration_seconds, channel=0)
        spans = imagebind_window_samples(wave.numel(), c.num_windows, c.window_seconds)
        times = spans.clamp(max=wave.numel()).double() / SAMPLE_RATE
        return Media(
            data=wave, source=source_name(source), duration=duration, times=times.float(),
            sample_rate=SAMPLE_RATE, meta={"window_samples": spans},
        )

    def transform(self, media: Media, train: bool) -> torch.Tensor:
        """(W, 1, num_mel_bins, target_frames) float32 features; identical for train and eval."""
        spans_missing = self.config.preprocess == GROUNDINGGPT and "window_samples" not in media.meta
        if media.sample_rate != SAMPLE_RATE or media.times is None or media.data.dim() != 1 or spans_missing:
            raise ValueError(
                f"{media.source}: audio transform needs Media from AudioModality.load "
                f"((N,) samples at {SAMPLE_RATE} Hz with window times), got data "
                f"{tuple(media.data.shape)} at {media.sample_rate} Hz"
            )
        c = self.config
        if c.preprocess == GROUNDINGGPT:
            spans = media.meta["window_samples"]
        else:
            spans = window_samples(media.times[:, 0], c.window_seconds)
        return window_fbanks(media.data, spans, c.num_mel_bins, c.target_frames, c.fbank_mean, c.fbank_std)
