"""CLIP vision encoders: loading (HF folder / hub id / tiny), layer selection, CLIP pixel stats.

``CLIPFeatures`` returns the hidden states of one chosen layer. LLaVA-style image models
(GroundingGPT's image branch) read the second-to-last layer and drop the CLS token; BLIP-2's
ViT-L variant reads the same layer with CLS kept. The layers after the chosen one are removed
at build time: they would only cost compute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from modalities.checkpoints import TINY, hub_offline, resolve_pretrained
from modalities.errors import CheckpointFormatError

# OpenAI CLIP's pixel statistics (RGB, on [0, 1] pixel values).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def mean_colour_uint8() -> tuple[int, int, int]:
    """CLIP's mean colour in 0-255 RGB: the fill for padding and transparent pixels."""
    return tuple(round(c * 255) for c in CLIP_MEAN)  # (123, 117, 104)


@dataclass
class TinyVisionShape:
    """Shape of a tiny random-weight CLIP vision tower (tests, the laptop demo).

    The input size is not part of it: it is the modality's ``image_size``.
    """

    patch_size: int = 8  # patch side in pixels
    hidden_size: int = 32  # token width
    num_layers: int = 2  # transformer layers
    num_heads: int = 2  # attention heads
    # CLIP initialises position embeddings at std 0.02, about a tenth of a patch embedding's
    # size: a frozen random tower then hides where a patch is (measured: position explained
    # 2.8% of the layer -2 feature variance on the synthetic world). At 0.15 it explains
    # ~45%, like a trained CLIP, whose position embeddings are far from negligible.
    position_init_std: float = 0.15

    def __post_init__(self) -> None:
        for name in ("patch_size", "hidden_size", "num_layers", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"tiny.{name} must be >= 1, got {getattr(self, name)}")
        if self.position_init_std < 0:
            raise ValueError(f"tiny.position_init_std must be >= 0, got {self.position_init_std}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"tiny.hidden_size ({self.hidden_size}) must be divisible by tiny.num_heads ({self.num_heads})")

    @classmethod
    def of(cls, value: TinyVisionShape | Mapping) -> TinyVisionShape:
        """Accept the dataclass itself or a recipe mapping of its fields."""
        return value if isinstance(value, cls) else cls(**dict(value))

    def to_hf(self, image_size: int) -> CLIPVisionConfig:
        if image_size % self.patch_size:
            raise ValueError(f"image_size ({image_size}) must be a multiple of tiny.patch_size ({self.patch_size})")
        return CLIPVisionConfig(
            image_size=image_size, patch_size=self.patch_size, hidden_size=self.hidden_size,
            intermediate_size=4 * self.hidden_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, projection_dim=self.hidden_size,
        )


def load_clip_vision(location: str, recipe_key: str, tiny: TinyVisionShape, image_size: int) -> CLIPVisionModel:
    """A CLIP vision tower from ``"tiny"``, a local HF folder, or a hub id.

    A folder may hold a ``CLIPVisionModel`` or a full ``CLIPModel`` (its text half is ignored).
    ``image_size`` sizes the tiny build; a loaded checkpoint must already take that size.

    Raises:
        CheckpointNotFoundError: the folder or hub id is not available (see resolve_pretrained).
        CheckpointFormatError: the folder loads but lacks vision weights.
    """
    if location == TINY:
        model = CLIPVisionModel(tiny.to_hf(image_size))
        with torch.no_grad():
            model.embeddings.position_embedding.weight.copy_(
                sincos_positions(image_size // tiny.patch_size, tiny.hidden_size, tiny.position_init_std)
            )
        return model
    path = resolve_pretrained(location, recipe_key)
    model, info = CLIPVisionModel.from_pretrained(
        path, output_loading_info=True, local_files_only=hub_offline(), dtype=torch.float32
    )
    missing = sorted(info["missing_keys"])
    if missing or info["mismatched_keys"]:
        raise CheckpointFormatError(
            location, recipe_key,
            f"not a CLIP vision checkpoint: {len(missing)} weights missing, e.g. {missing[:5]}; "
            f"mis-shaped: {sorted(info['mismatched_keys'])[:5]}",
        )
    if model.config.image_size != image_size:
        raise CheckpointFormatError(
            location, recipe_key, f"encoder takes {model.config.image_size} px inputs, the recipe asks for {image_size}"
        )
    return model


def clip_vision_record(features: CLIPFeatures) -> dict:
    """The HF config of the tower ``features`` was cut from, at its full depth, as JSON data."""
    record = json.loads(features.model.config.to_json_string(use_diff=False))
    record["num_hidden_layers"] = features.source_layers
    return record


def clip_vision_from_record(record: Mapping, recipe_key: str, image_size: int) -> CLIPVisionModel:
    """A CLIP vision tower of the recorded shape with untrained weights; reads no file."""
    config = CLIPVisionConfig.from_dict(dict(record))
    if config.image_size != image_size:
        raise CheckpointFormatError(
            "the saved model folder", recipe_key,
            f"its encoder takes {config.image_size} px inputs, the recipe asks for {image_size}",
        )
    return CLIPVisionModel(config)


def sincos_positions(grid: int, width: int, std: float) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings (as in MAE), CLS row first: (1 + grid^2, width).

    Half the channels encode the column, half the row, each as sin/cos pairs over
    geometrically spaced frequencies; the patch rows are scaled to ``std``, the CLS row is 0.
    """
    if width % 4:
        raise ValueError(f"tiny.hidden_size ({width}) must be a multiple of 4 for 2-D sin-cos positions")
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (W/4,)
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # patch order is row-major

    def encode(pos: torch.Tensor) -> torch.Tensor:  # (grid^2,) -> (grid^2, W/2)
        angle = pos.flatten()[:, None] * omega[None]
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    patches = torch.cat([encode(cols), encode(rows)], dim=1)  # (grid^2, W)
    patches = patches - patches.mean(0)  # no shared offset: only where a patch is remains
    patches = patches * (std / patches.std())
    return torch.cat([torch.zeros(1, width, dtype=torch.float64), patches]).float()


class CLIPFeatures(nn.Module):
    """Hidden states of one layer of a CLIP vision tower: (B, 3, S, S) -> (B, N, C).

    Args:
        model: the vision tower; layers after ``layer`` are removed from it.
        layer: which hidden state, counted as in ``output_hidden_states`` (0 = embeddings,
            -1 = last layer, -2 = second-to-last).
        drop_cls: drop the CLS token, leaving the (S / patch)^2 patch tokens.
    """

    def __init__(self, model: CLIPVisionModel, layer: int, drop_cls: bool):
        super().__init__()
        depth = model.config.num_hidden_layers
        keep = layer if layer >= 0 else depth + 1 + layer  # layers to run
        if not 1 <= keep <= depth:
            raise ValueError(f"feature layer {layer} is outside the encoder's {depth} layers (1..{depth} or -1..-{depth})")
        self.source_layers = depth  # before the cut: what a saved folder's record rebuilds
        model.encoder.layers = model.encoder.layers[:keep]
        model.config.num_hidden_layers = keep
        self.model = model
        self.drop_cls = drop_cls

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def patch_size(self) -> int:
        return self.model.config.patch_size

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised pixels -> (B, N, C); N = patches (+1 with CLS)."""
        # CLIPVisionModel's last_hidden_state is the last kept layer's output, before the
        # post-LayerNorm (which CLIP only applies to the pooled CLS).
        hidden = self.model(pixel_values=pixels.to(self.model.dtype)).last_hidden_state
        return hidden[:, 1:] if self.drop_cls else hidden
