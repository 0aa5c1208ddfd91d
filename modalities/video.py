"""The video modality: F sampled frames -> frozen image tower + BLIP-2 Q-Former -> video Q-Former.

Reference (GroundingGPT): 64 frames at 224 px; per frame a frozen image encoder and a frozen
BLIP-2 Q-Former (32 queries of 768); then, trainable, a learned frame position embedding
(64 x 768), a 2-layer video Q-Former with 64 queries and Linear(768 -> d_model): 64 tokens.

Two frame towers (``frame_encoder_type``), each with the BLIP-2 Q-Former trained on it:

- ``clip`` (default): CLIP ViT-L/14, whose matching BLIP-2 Q-Former is LAVIS's ``pretrain_vitL``
  checkpoint (``blip2_pretrained_vitL.pth``,
  https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/blip2_pretrained_vitL.pth),
  trained on CLIP-L/14's second-to-last layer with the CLS token kept. This project's design:
  a smaller tower, shared with the image branch's family, for training from scratch.
- ``eva_vit_g``: EVA ViT-g/14 (``modalities.eva_vit``) with the 1408-wide BLIP-2 Q-Former of
  ``blip2_pretrained_flant5xxl.pth``. GroundingGPT's released video branch was trained on this
  tower, so using (or fine-tuning) the released model needs it: its video Q-Former only
  understands these frame features.

Either way BLIP-2's ``ln_vision`` is the frame Q-Former's ``vision_norm`` and runs once.

Shapes: ``transform`` gives (F, 3, S, S) float; ``encode`` maps (B, F, 3, S, S) to frame
tokens (B, F, 32, 768) (kept per frame so the adapter can add one position per frame);
``adapt`` gives (B, num_queries, d_model).

Transforms: eval pads each frame to a square with CLIP's mean colour and resizes it, as for
images, and never crops (the reference applied its training crop at inference: a defect).
Train first takes one random crop (area fraction ``train_crop_scale``, aspect ratio
``train_crop_ratio``) shared by all frames, then does the same.

``preprocess: groundinggpt``: the released GroundingGPT-7B's video inputs. Sources:
``lego/serve/cli.py`` and ``lego/train/train.py`` call ``load_video(path, n_frms=max_frame,
height=224, width=224, sampling="uniform")`` and then the ``transform`` of
``AlproVideoTrainProcessor(image_size=224, n_frms=max_frame)`` (``lego/model/builder.py``;
``video_llama/processors/video_processor.py``), at inference as in training:

* frames at segment starts, all frames of a short clip (``groundinggpt_frame_indices``);
* each frame squashed to 224 x 224 by the decoder (decord's ``height``/``width``: FFmpeg
  scaling, aspect ratio not kept, no padding);
* ``RandomResizedCropVideo(224, scale=(0.5, 1.0), interpolation_mode="bicubic")`` (ratio
  3/4 to 4/3), also at inference; then ``ToUint8`` (truncation), x / 255, CLIP mean/std
  (``AlproVideoBaseProcessor``'s defaults, the same constants as ours).

The crop at inference is random: the released model answers from a different half-to-whole
part of the frame each time it is asked, which no deterministic pipeline reproduces. Eval
here takes the whole frame (the crop with scale (1, 1), its deterministic limit, which is
an identity: a 224 crop resized to 224). Train takes the random crop with this config's
``train_crop_scale`` / ``train_crop_ratio`` (the reference's: (0.5, 1.0), (3/4, 4/3)),
resized back to 224 bicubic and truncated to uint8 as the reference does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import RandomResizedCrop

from modalities.base import Media, Modality, register_modality
from modalities.clip import (
    CLIPFeatures,
    TinyVisionShape,
    clip_vision_from_record,
    clip_vision_record,
    load_clip_vision,
)
from modalities.errors import CheckpointFormatError
from modalities.eva_vit import EvaViT, EvaViTShape
from modalities.eva_vit_checkpoints import load_eva_vit
from modalities.image import normalise, pad_to_square, resize_normalise
from modalities.io import MediaSource
from modalities.preprocess import GROUNDINGGPT, check_preprocess
from modalities.qformer import (
    BlipQFormer,
    QFormerAdapter,
    QFormerConfig,
    blip_qformer_from_record,
    blip_qformer_record,
    build_blip2_qformer,
)
from modalities.video_io import groundinggpt_frame_indices, read_video, sample_indices


@dataclass
class TinyFrameQFormerShape:
    """Shape of a tiny random-weight BLIP-2 Q-Former (used when frame_qformer="tiny")."""

    hidden_size: int = 32  # query width (real: 768)
    num_layers: int = 2  # transformer layers (real: 12)
    num_heads: int = 2  # attention heads (real: 12)
    num_queries: int = 32  # query tokens per frame (real: 32)
    cross_attention_frequency: int = 2  # cross-attention every this many layers (real: 2)

    @classmethod
    def of(cls, value: TinyFrameQFormerShape | dict) -> TinyFrameQFormerShape:
        """Accept the dataclass itself or a recipe mapping of its fields."""
        return value if isinstance(value, cls) else cls(**dict(value))

    def to_config(self, encoder_hidden_size: int) -> QFormerConfig:
        return QFormerConfig(
            num_layers=self.num_layers, hidden_size=self.hidden_size, num_heads=self.num_heads,
            intermediate_size=4 * self.hidden_size, num_queries=self.num_queries,
            encoder_hidden_size=encoder_hidden_size, max_positions=0,
            cross_attention_frequency=self.cross_attention_frequency, dropout=0.0,
            # A frozen random Q-Former with BERT's init (std 0.02) lets almost nothing of the
            # frames through: its cross-attention output is ~1% of the query embeddings it is
            # added to, so every video looked the same (measured: 0.7% variation across
            # clips). Weights of std 1/sqrt(width), like a trained layer's, pass the content.
            init_std=self.hidden_size**-0.5,
        )


@dataclass
class VideoConfig:
    """Video modality settings (recipe section ``model.modalities.video``)."""

    num_frames: int = 64  # frames sampled per clip (F); short clips repeat frames
    image_size: int = 224  # frame side in pixels after pad-to-square and resize
    # Which frame tower: "clip" (CLIP vision) or "eva_vit_g" (EVA ViT-g/14, GroundingGPT's;
    # frame_qformer must then be the 1408-wide blip2_pretrained_flant5xxl.pth or a BLIP-2 folder).
    frame_encoder_type: str = "clip"
    # clip: a CLIP vision HF folder / hub id; eva_vit_g: a LAVIS eva_vit_g.pth (.pth/.safetensors
    # in LAVIS's eva_vit names) or a transformers BLIP-2 / Blip2VisionModel folder / hub id; or "tiny".
    frame_encoder: str = "openai/clip-vit-large-patch14"
    # Frame tower output the Q-Former reads (CLS kept). clip: a hidden state as counted in
    # output_hidden_states (None = -2, BLIP-2's ViT-L choice). eva_vit_g: how many blocks run,
    # counted from the first (None = BLIP-2's 39, all of a tiny tower); not from the end, as
    # EVA files hold 40 blocks (eva_vit_g.pth) or 39 (BLIP-2 / GroundingGPT / HF folders).
    frame_feature_layer: int | None = None
    frame_qformer: str = "blip2_pretrained_vitL.pth"  # LAVIS BLIP-2 file, HF BLIP-2 folder / hub id, or "tiny"
    frame_batch_size: int = 64  # frames per frozen-encoder forward pass (bounds memory)
    num_queries: int = 64  # decoder tokens per video (video Q-Former queries, over all windows)
    # Frames the video Q-Former reads at a time: 0 = the whole clip (GroundingGPT); W > 0 =
    # each run of W frames gets num_queries * W / num_frames queries of its own, so the
    # tokens come out in time order (TimeChat's sliding Q-Former). Global queries must first
    # learn which frames to read; until then every token is a clip average and carries no time.
    adapter_window_frames: int = 0
    adapter_num_layers: int = 2  # video Q-Former layers
    adapter_hidden_size: int = 768  # video Q-Former width
    adapter_num_heads: int = 12  # video Q-Former attention heads
    adapter_intermediate_size: int = 3072  # video Q-Former feed-forward width
    adapter_dropout: float = 0.1  # video Q-Former dropout (train mode only)
    # Std of the video Q-Former's random initial weights. BERT's 0.02 suits a 768-wide one;
    # a narrow one at 0.02 starts with near-uniform cross-attention (logits ~0.1), so every
    # query reads the same frame average and the decoder sees no time until that is unlearnt.
    adapter_init_std: float = 0.02
    # Feed the video Q-Former what changes over time: each frame's tokens minus the clip's
    # mean over frames, rescaled to unit std per clip. Off in GroundingGPT. Frozen random
    # frame features (the tiny demo) keep an event at ~5% of their variance, under the static
    # background and shapes; the decoder then never learnt when an event starts (start-digit
    # accuracy at the majority-class rate) until this was on (video R@1@0.5 0.44 -> 0.87).
    temporal_residual: bool = False
    train_crop_scale: tuple[float, float] = (0.8, 1.0)  # training crop area fraction range; (1, 1) = no crop
    train_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # training crop aspect ratio range (w / h)
    max_frame_pixels: int = 40_000_000  # refuse videos whose frames have more pixels than this
    tiny_encoder: TinyVisionShape = field(default_factory=TinyVisionShape)  # shape if frame_encoder="tiny" (either type)
    tiny_qformer: TinyFrameQFormerShape = field(default_factory=TinyFrameQFormerShape)  # if frame_qformer="tiny"
    # Input pipeline, "default" or "groundinggpt" (modalities/preprocess.py); set from the
    # recipe's `model.preprocess`, None = not set = "default".
    preprocess: str | None = None
    recipe_key: str = "model.modalities.video"  # where this section sits in the recipe, for errors

    def __post_init__(self) -> None:
        check_preprocess(self.preprocess, self.key("preprocess"))
        self.tiny_encoder = TinyVisionShape.of(self.tiny_encoder)
        self.tiny_qformer = TinyFrameQFormerShape.of(self.tiny_qformer)
        self.train_crop_scale = _pair(self.train_crop_scale, "train_crop_scale")
        self.train_crop_ratio = _pair(self.train_crop_ratio, "train_crop_ratio")
        window = self.adapter_window_frames
        if window < 0 or (window and (self.num_frames % window or self.num_queries % self.adapter_windows)):
            raise ValueError(
                f"VideoConfig.adapter_window_frames ({window}) must be 0 or divide num_frames "
                f"({self.num_frames}) into windows that share num_queries ({self.num_queries}) evenly"
            )
        if self.adapter_init_std <= 0:
            raise ValueError(f"VideoConfig.adapter_init_std must be > 0, got {self.adapter_init_std}")
        if self.temporal_residual and self.num_frames < 2:
            raise ValueError(f"VideoConfig.temporal_residual needs num_frames >= 2, got {self.num_frames}")
        for name in ("num_frames", "image_size", "frame_batch_size", "num_queries", "adapter_num_layers",
                     "adapter_hidden_size", "adapter_num_heads", "adapter_intermediate_size", "max_frame_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"VideoConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.frame_encoder or not self.frame_qformer:
            raise ValueError("VideoConfig.frame_encoder and VideoConfig.frame_qformer must be set (or 'tiny')")
        if self.frame_encoder_type not in FRAME_ENCODER_TYPES:
            raise ValueError(
                f"`{self.key('frame_encoder_type')}` must be one of {list(FRAME_ENCODER_TYPES)}, "
                f"got {self.frame_encoder_type!r}"
            )
        if self.frame_feature_layer is None and self.frame_encoder_type == CLIP:
            self.frame_feature_layer = -2  # BLIP-2's ViT-L Q-Former reads CLIP's second-to-last layer
        if self.frame_feature_layer == 0:
            raise ValueError("VideoConfig.frame_feature_layer must not be 0 (the embeddings, before any layer)")
        if self.frame_encoder_type == EVA_VIT_G and self.frame_feature_layer is not None and self.frame_feature_layer < 1:
            raise ValueError(
                f"`{self.key('frame_feature_layer')}` is {self.frame_feature_layer}, but with "
                f"`{self.key('frame_encoder_type')}: eva_vit_g` it counts the blocks to run from the first "
                "(BLIP-2: 39), or is unset for that default: EVA checkpoints hold 40 or 39 blocks, so a "
                "layer counted from the end would mean different blocks in different files"
            )
        low, high = self.train_crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"VideoConfig.train_crop_scale must satisfy 0 < low <= high <= 1, got {self.train_crop_scale}")
        low, high = self.train_crop_ratio
        if not 0.0 < low <= high:
            raise ValueError(f"VideoConfig.train_crop_ratio must satisfy 0 < low <= high, got {self.train_crop_ratio}")
        if self.adapter_hidden_size % self.adapter_num_heads:
            raise ValueError(
                f"VideoConfig.adapter_hidden_size ({self.adapter_hidden_size}) must be divisible by "
                f"VideoConfig.adapter_num_heads ({self.adapter_num_heads})"
            )

    @property
    def adapter_windows(self) -> int:
        """How many windows the video Q-Former reads a clip in (1 = the whole clip)."""
        return self.num_frames // self.adapter_window_frames if self.adapter_window_frames else 1

    def key(self, field_name: str) -> str:
        """The dotted recipe key of one field, e.g. ``model.modalities.video.frame_qformer``."""
        return f"{self.recipe_key}.{field_name}"


CLIP = "clip"
EVA_VIT_G = "eva_vit_g"
FRAME_ENCODER_TYPES = (CLIP, EVA_VIT_G)


def _pair(value: Sequence[float], name: str) -> tuple[float, float]:
    if len(value) != 2:
        raise ValueError(f"VideoConfig.{name} must be two numbers (low, high), got {value}")
    return float(value[0]), float(value[1])


class FrameEncoder(nn.Module):
    """Frozen per-frame features: (B, F, 3, S, S) -> (B, F, Q, H) BLIP-2 query outputs.

    The tower (``CLIPFeatures`` or ``EvaViT``, (N, 3, S, S) -> (N, T, C) raw tokens) sits
    under its own attribute, which is its weights' key prefix in a model folder: ``clip.*``
    (as folders have always had it) or ``eva.*`` (then LAVIS's eva_vit names). The Q-Former
    applies BLIP-2's ``ln_vision`` (its ``vision_norm``) to those tokens.
    """

    def __init__(self, tower: CLIPFeatures | EvaViT, qformer: BlipQFormer, frame_batch_size: int):
        super().__init__()
        self.tower_name = "eva" if isinstance(tower, EvaViT) else "clip"
        self.add_module(self.tower_name, tower)
        self.qformer = qformer
        self.frame_batch_size = frame_batch_size

    @property
    def tower(self) -> CLIPFeatures | EvaViT:
        return getattr(self, self.tower_name)

    @property
    def num_queries(self) -> int:
        return self.qformer.config.num_queries

    @property
    def hidden_size(self) -> int:
        return self.qformer.config.hidden_size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        B, F = frames.shape[:2]
        flat = frames.flatten(0, 1)  # (B*F, 3, S, S)
        chunks = [self.qformer(self.tower(chunk)) for chunk in flat.split(self.frame_batch_size)]
        return torch.cat(chunks).unflatten(0, (B, F))  # (B, F, Q, H)


def temporal_residual(features: torch.Tensor, rel_tol: float = 1e-4) -> torch.Tensor:
    """(B, F, ...) -> the same minus each clip's mean over F, divided by each clip's std.

    A clip whose change is below ``rel_tol`` of its largest value (nothing moves; only
    float rounding is left) gives zeros, not rounding noise blown up to unit scale.
    """
    residual = features - features.mean(dim=1, keepdim=True)
    std = residual.flatten(1).std(dim=1)  # (B,)
    static = std <= rel_tol * features.flatten(1).abs().amax(dim=1)
    scale = torch.where(static, torch.full_like(std, float("inf")), std)
    return residual / scale.view(-1, *([1] * (features.dim() - 1)))


def squash(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(F, 3, H, W) uint8 -> (F, 3, size, size) uint8, aspect ratio not kept.

    Frames of the decoder's size pass unchanged; others (a training crop) are resized as
    the reference's ``RandomResizedCropVideo`` resizes its crop: ``F.interpolate`` bicubic,
    ``align_corners=False``, no antialiasing, then ``ToUint8``: truncation. Values are clamped
    to 0-255 first (bicubic overshoots; a cast of an out-of-range float has no defined value).
    """
    if frames.shape[-2:] == (size, size):
        return frames
    resized = F.interpolate(frames.float(), size=(size, size), mode="bicubic", align_corners=False)
    return resized.clamp_(0, 255).to(torch.uint8)


@register_modality
class VideoModality(Modality):
    """Videos -> ``num_queries`` decoder tokens (reference: 64)."""

    name = "video"
    record_key = "video"
    placeholder = "<video>"
    token_prefix = "vi"
    config_class = VideoConfig

    def __init__(self, config: VideoConfig, d_model: int, architecture: Mapping[str, Any] | None = None):
        super().__init__(config, d_model)
        self.encoder = _build_frame_encoder(config, architecture)
        self.adapter = QFormerAdapter(
            QFormerConfig(
                num_layers=config.adapter_num_layers, hidden_size=config.adapter_hidden_size,
                num_heads=config.adapter_num_heads, intermediate_size=config.adapter_intermediate_size,
                num_queries=config.num_queries // config.adapter_windows, encoder_hidden_size=self.encoder.hidden_size,
                max_positions=config.num_frames, cross_attention_frequency=1, dropout=config.adapter_dropout,
                init_std=config.adapter_init_std, window=config.adapter_window_frames,
            ),
            d_model,
        )
        self.freeze_encoder()

    @property
    def num_tokens(self) -> int:
        return self.config.num_queries

    def architecture(self) -> dict[str, Any]:
        """The frame tower's type and shape (CLIP: its HF config; EVA: its EvaViTShape) and the
        BLIP-2 Q-Former's shape. A record without a type (older folders) is CLIP."""
        tower = self.encoder.tower
        return {
            "frame_encoder_type": self.config.frame_encoder_type,
            "frame_encoder": tower.shape.record() if isinstance(tower, EvaViT) else clip_vision_record(tower),
            "frame_qformer": blip_qformer_record(self.encoder.qformer),
        }

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, K, C) frame tokens -> (B, num_queries, d_model)."""
        return self.adapter(temporal_residual(features) if self.config.temporal_residual else features)

    def load(self, source: MediaSource) -> Media:
        """Decoded frames; with ``groundinggpt`` fewer than ``num_frames`` for a short clip
        (every frame once), already squashed to image_size x image_size by the decoder."""
        c = self.config
        if c.preprocess == GROUNDINGGPT:
            size = (c.image_size, c.image_size)
            return read_video(source, c.num_frames, c.max_frame_pixels, groundinggpt_frame_indices, size)
        return read_video(source, c.num_frames, c.max_frame_pixels, sample_indices)

    def transform(self, media: Media, train: bool) -> torch.Tensor:
        """(F, 3, H, W) uint8 -> (F, 3, S, S) float; a shared random crop first if ``train``."""
        frames = self._random_crop(media.data) if train else media.data
        if self.config.preprocess == GROUNDINGGPT:
            return normalise(squash(frames, self.config.image_size))
        return resize_normalise(pad_to_square(frames), self.config.image_size)

    def _random_crop(self, frames: torch.Tensor) -> torch.Tensor:
        """One crop box for all frames, drawn from torch's RNG (seeded per worker by the loader)."""
        scale, ratio = self.config.train_crop_scale, self.config.train_crop_ratio
        if scale == (1.0, 1.0):
            return frames
        top, left, height, width = RandomResizedCrop.get_params(frames[0], list(scale), list(ratio))
        return frames[..., top:top + height, left:left + width]


def _build_frame_encoder(config: VideoConfig, architecture: Mapping[str, Any] | None) -> FrameEncoder:
    """From the checkpoints the config names, or (``architecture``) from a saved folder's record."""
    if architecture:
        recorded = architecture.get("frame_encoder_type", CLIP)
        if recorded != config.frame_encoder_type:
            raise CheckpointFormatError(
                "the saved model folder", config.key("frame_encoder_type"),
                f"its video frames were encoded with {recorded!r}, the recipe asks for {config.frame_encoder_type!r}",
            )
    features = _build_tower(config, architecture)
    if architecture:
        qformer = blip_qformer_from_record(architecture["frame_qformer"])
    else:
        qformer = build_blip2_qformer(
            config.frame_qformer, config.key("frame_qformer"), config.tiny_qformer.to_config(features.hidden_size)
        )
    if qformer.config.encoder_hidden_size != features.hidden_size:
        raise CheckpointFormatError(
            config.frame_qformer, config.key("frame_qformer"),
            f"this Q-Former reads {qformer.config.encoder_hidden_size}-d image features but "
            f"`{config.key('frame_encoder')}` gives {features.hidden_size}-d ones; a BLIP-2 Q-Former "
            "only fits the image encoder it was trained with (CLIP ViT-L/14: blip2_pretrained_vitL.pth; "
            "EVA ViT-g/14: blip2_pretrained_flant5xxl.pth or another 1408-wide BLIP-2)",
        )
    return FrameEncoder(features, qformer, config.frame_batch_size)


def _build_tower(config: VideoConfig, architecture: Mapping[str, Any] | None) -> CLIPFeatures | EvaViT:
    """The frame tower, cut to the output the Q-Former reads: (N, 3, S, S) -> (N, T, C)."""
    key = config.key("frame_encoder")
    if config.frame_encoder_type == EVA_VIT_G:
        if not architecture:
            return load_eva_vit(config.frame_encoder, key, config.tiny_encoder, config.image_size,
                                blocks=config.frame_feature_layer)
        shape = EvaViTShape.from_record(architecture["frame_encoder"])
        if shape.image_size != config.image_size:
            raise CheckpointFormatError(
                "the saved model folder", key, f"its EVA tower takes {shape.image_size} px inputs, the recipe asks for {config.image_size}"
            )
        blocks = config.frame_feature_layer
        if blocks is not None and blocks != shape.depth:
            raise CheckpointFormatError(
                "the saved model folder", config.key("frame_feature_layer"),
                f"its EVA tower runs {shape.depth} blocks, the recipe asks for {blocks}",
            )
        return EvaViT(shape)  # already cut to the blocks it runs; weights come from the folder
    if architecture:
        clip = clip_vision_from_record(architecture["frame_encoder"], key, config.image_size)
    else:
        clip = load_clip_vision(config.frame_encoder, key, config.tiny_encoder, config.image_size)
    return CLIPFeatures(clip, config.frame_feature_layer, drop_cls=False)
