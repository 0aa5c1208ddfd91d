"""EVA ViT-g/14, the image tower BLIP-2 (and so GroundingGPT's video branch) was trained on.

GroundingGPT reads each video frame with EVA-CLIP ViT-g/14 and BLIP-2's Q-Former from
``blip2_pretrained_flant5xxl.pth``; that Q-Former only works on the features of this tower.
The module names (and so the state-dict keys) are LAVIS's ``lavis/models/eva_vit.py`` names,
so LAVIS's ``eva_vit_g.pth`` and a released checkpoint's ``visual_encoder.*`` load one to one:
``cls_token``, ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.norm1.*``,
``blocks.N.attn.qkv.weight``, ``blocks.N.attn.q_bias``, ``blocks.N.attn.v_bias``,
``blocks.N.attn.proj.*``, ``blocks.N.norm2.*``, ``blocks.N.mlp.fc1.*``, ``blocks.N.mlp.fc2.*``.

Facts, with their sources (LAVIS ``eva_vit.py::create_eva_vit_g`` and ``VisionTransformer``;
transformers' ``Blip2VisionConfig`` defaults and ``Blip2VisionModel``, which is the same net):

- 224 px input, 14 px patches: a 16 x 16 grid + CLS = 257 tokens; width 1408.
- 39 blocks: EVA ViT-g has 40, BLIP-2 builds ``depth=39`` and loads ``eva_vit_g.pth`` with
  ``strict=False``, so the 40th is dropped (BLIP-2 paper: the second-to-last layer's output).
- 16 heads of 88 (``num_heads=1408 // 88``); MLP width ``int(1408 * 4.3637)`` = 6144.
- Attention: one ``qkv`` Linear without bias, plus learned ``q_bias`` and ``v_bias``; the key
  bias is zero (a key bias adds the same q.b to every logit of a query row, which softmax
  cancels, so it would do nothing). Scale head_width^-0.5.
- Pre-norm blocks: x += proj(attn(norm1(x))); x += fc2(gelu(fc1(norm2(x)))). GELU is the exact
  (erf) one: ``nn.GELU()`` in LAVIS, ``hidden_act="gelu"`` in transformers. No layer scale
  (``init_values=None``), no relative position bias (``use_rel_pos_bias=False``).
- LayerNorm eps 1e-6 (``partial(nn.LayerNorm, eps=1e-6)``; ``layer_norm_eps=1e-6``).
- Absolute position embedding (CLS row first), added after the CLS token is prepended; LAVIS
  interpolates its patch rows bicubically when a checkpoint's grid differs from the model's
  (``interpolate_pos_embed``), see ``eva_vit_checkpoints``.
- No final norm inside the tower. BLIP-2 then applies ``ln_vision`` (a LayerNorm(1408)); that
  is ``BlipQFormer.vision_norm`` here (transformers: the vision model's ``post_layernorm``),
  so it belongs to the frame Q-Former and runs exactly once.
- LAVIS casts the tower to fp16 after loading (``convert_weights_to_fp16``); weights load here
  in fp32 whatever the file holds, and the model is cast to its run dtype afterwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modalities.clip import TinyVisionShape, sincos_positions

EVA_HEAD_WIDTH = 88  # LAVIS create_eva_vit_g: num_heads = 1408 // 88
BLIP2_EVA_BLOCKS = 39  # blocks BLIP-2 runs (EVA ViT-g has 40; the last is dropped)


@dataclass(frozen=True)
class EvaViTShape:
    """The shape of an EVA ViT (defaults: EVA ViT-g/14 at 224 px as BLIP-2 builds it)."""

    image_size: int = 224  # input side in pixels
    patch_size: int = 14  # patch side in pixels
    width: int = 1408  # token width
    depth: int = BLIP2_EVA_BLOCKS  # transformer blocks run
    num_heads: int = 16  # attention heads (EVA ViT-g: 16 of 88)
    mlp_width: int = 6144  # feed-forward width
    norm_eps: float = 1e-6  # eps of every LayerNorm inside the tower

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "width", "depth", "num_heads", "mlp_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvaViTShape.{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"EvaViTShape.image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.width % self.num_heads:
            raise ValueError(f"EvaViTShape.width ({self.width}) must be divisible by num_heads ({self.num_heads})")
        if self.norm_eps <= 0:
            raise ValueError(f"EvaViTShape.norm_eps must be > 0, got {self.norm_eps}")

    @property
    def grid(self) -> int:
        """Patches per side (EVA ViT-g at 224 px: 16)."""
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """CLS + grid^2 patch tokens (EVA ViT-g at 224 px: 257)."""
        return 1 + self.grid**2

    @classmethod
    def tiny(cls, tiny: TinyVisionShape, image_size: int) -> EvaViTShape:
        """A tiny random-weight tower of the recipe's ``tiny_encoder`` shape (MLP 4x wide)."""
        return cls(image_size=image_size, patch_size=tiny.patch_size, width=tiny.hidden_size, depth=tiny.num_layers,
                   num_heads=tiny.num_heads, mlp_width=4 * tiny.hidden_size)

    def record(self) -> dict:
        """As JSON data, for a model folder's architecture record."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping) -> EvaViTShape:
        return cls(**dict(record))


class EvaAttention(nn.Module):
    """Multi-head self-attention with a bias on queries and values only (EVA / BEiT)."""

    def __init__(self, width: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        B, N, C = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])  # (3C,): no key bias
        qkv = F.linear(x, self.qkv.weight, bias).view(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, C / heads)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(C / heads)) v
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class EvaMlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()  # exact erf GELU, as LAVIS's nn.GELU() and transformers' "gelu"
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class EvaBlock(nn.Module):
    """Pre-norm transformer block: x += attn(norm1 x); x += mlp(norm2 x)."""

    def __init__(self, shape: EvaViTShape):
        super().__init__()
        self.norm1 = nn.LayerNorm(shape.width, eps=shape.norm_eps)
        self.attn = EvaAttention(shape.width, shape.num_heads)
        self.norm2 = nn.LayerNorm(shape.width, eps=shape.norm_eps)
        self.mlp = EvaMlp(shape.width, shape.mlp_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens: (B, 3, S, S) -> (B, (S / p)^2, C), row-major."""

    def __init__(self, shape: EvaViTShape):
        super().__init__()
        self.proj = nn.Conv2d(3, shape.width, kernel_size=shape.patch_size, stride=shape.patch_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.proj(pixels).flatten(2).transpose(1, 2)


class EvaViT(nn.Module):
    """EVA ViT without a final norm: (B, 3, S, S) normalised pixels -> (B, 1 + grid^2, width).

    Built with placeholder weights (zeros for ``cls_token`` / ``pos_embed`` / biases, torch's
    defaults for Linear and Conv): weights come from a checkpoint, a model folder, or
    ``init_tiny_`` for a random tiny tower.
    """

    def __init__(self, shape: EvaViTShape):
        super().__init__()
        self.shape = shape
        self.patch_embed = PatchEmbed(shape)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, shape.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, shape.num_tokens, shape.width))
        self.blocks = nn.ModuleList(EvaBlock(shape) for _ in range(shape.depth))

    @property
    def hidden_size(self) -> int:
        return self.shape.width

    @property
    def image_size(self) -> int:
        return self.shape.image_size

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.shape.image_size
        if pixels.shape[-3:] != (3, size, size):
            raise ValueError(f"EVA ViT takes (B, 3, {size}, {size}) pixels, got {tuple(pixels.shape)}")
        x = self.patch_embed(pixels.to(self.pos_embed.dtype))  # (B, grid^2, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x  # (B, 1 + grid^2, C); BLIP-2's ln_vision is the Q-Former's vision_norm


@torch.no_grad()
def init_tiny_(model: EvaViT, position_std: float) -> EvaViT:
    """Random weights for a tiny tower that lets image content and position through.

    Linear and Conv keep torch's defaults (uniform in +-1/sqrt(fan_in): about a trained layer's
    scale, not LAVIS's 0.02, which lets almost nothing through a frozen random tower); biases and
    ``cls_token`` get small noise; the patch rows of ``pos_embed`` are 2-D sine-cosine at
    ``position_std`` (see ``TinyVisionShape.position_init_std``).
    """
    for block in model.blocks:
        block.attn.q_bias.normal_(0.0, 0.02)
        block.attn.v_bias.normal_(0.0, 0.02)
    model.cls_token.normal_(0.0, 0.02)
    model.pos_embed.copy_(sincos_positions(model.shape.grid, model.shape.width, position_std)[None])
    return model
