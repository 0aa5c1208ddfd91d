"""The image modality: PIL decoding, pad-to-square CLIP transform, frozen CLIP, MLP adapter.

Reference (GroundingGPT, LLaVA-1.5 style): CLIP ViT-L/14 at 336 px, second-to-last layer,
CLS dropped -> 576 tokens of 1024; adapter Linear(1024 -> d) -> GELU -> Linear(d -> d).

Decoding rules, all deterministic:

* The format is sniffed from the content, not the extension (a PNG named ``.jpg`` loads);
  content no decoder recognises is ``UnsupportedMediaError``.
* The pixel count is checked from the header before any decoding (``max_pixels``), so a
  20000 x 20000 image fails at once with ``MediaTooLargeError`` and allocates nothing. Pillow's
  own bomb guard (2 x ``PIL.Image.MAX_IMAGE_PIXELS``, about 179 M pixels) still applies above
  that and is reported the same way.
* EXIF orientation is applied; ``Media.size`` is (width, height) after it.
* Grey, palette, CMYK and 16-bit images become RGB uint8 (16-bit: value / 257). Transparent
  pixels are composited onto CLIP's mean colour, the same colour as the square padding, so
  to the encoder a transparent area looks like "no image" rather than black or white.

Transforms: pad to a square with the mean colour (image centred, as LLaVA's expand2square;
boxes are relative to that square), bicubic resize, CLIP normalisation. The train transform
equals the eval transform on purpose: a random crop or flip would move the boxes that the
text of the same sample states.

``preprocess: groundinggpt`` (the released GroundingGPT-7B's inputs; ``lego/mm_utils.py``
``load_image_square`` at inference, the same code inline in ``lego/train/train.py``):

* decoding is ``Image.open(f).convert("RGB")``: no EXIF rotation, alpha dropped (not
  composited), 16-bit grey clipped by Pillow (``decode_image(..., plain_rgb=True)``);
* the square's fill is ``tuple(int(x * 255) for x in image_mean)``, truncated, so
  (122, 116, 104), not our rounded (123, 117, 104) (``groundinggpt_pad_colour``);
* the image is pasted at ((side - w) // 2, (side - h) // 2): the odd pixel of padding goes
  to the right or bottom, as in ``square_offsets``, so box maths is the same in both;
* then ``CLIPImageProcessor`` (openai/clip-vit-large-patch14-336, transformers 4.x: Pillow):
  shortest edge to 336 with Pillow's bicubic, rounded back to uint8, centre crop 336 (a
  no-op on a square), x / 255, CLIP mean/std (``resize_like_clip_processor``). Ours resizes
  with torchvision's antialiased bicubic and keeps floats: values differ by a few 1/255.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn
from torchvision.transforms.v2 import functional as TF

from modalities.base import Media, Modality, register_modality
from modalities.checkpoints import TINY
from modalities.clip import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPFeatures,
    TinyVisionShape,
    clip_vision_from_record,
    clip_vision_record,
    load_clip_vision,
    mean_colour_uint8,
)
from modalities.errors import (
    CorruptMediaError,
    MediaTooLargeError,
    UnsupportedMediaError,
)
from modalities.io import MediaSource, read_bytes, source_name
from modalities.preprocess import GROUNDINGGPT, check_preprocess

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # "I" holds 16-bit PNG/TIFF data in Pillow


@dataclass
class ImageConfig:
    """Image modality settings (recipe section ``model.modalities.image``)."""

    encoder: str = "openai/clip-vit-large-patch14-336"  # CLIP vision HF folder / hub id, or "tiny"
    image_size: int = 336  # model input side in pixels; must equal the checkpoint's
    feature_layer: int = -2  # encoder hidden state to use (-2 = second-to-last layer)
    adapter_hidden_size: int | None = None  # width of the MLP adapter's middle; None = d_model
    # Merge each k x k square of patch tokens into one decoder token, channels concatenated
    # (InternVL's pixel shuffle; MiniGPT-v2 concatenates 4 adjacent tokens): k^2 fewer decoder
    # tokens, no feature dropped. 1 = one token per patch (LLaVA, GroundingGPT).
    adapter_merge: int = 1
    max_pixels: int = 100_000_000  # refuse images with more pixels than this (decompression bombs)
    tiny: TinyVisionShape = field(default_factory=TinyVisionShape)  # encoder shape when encoder="tiny"
    # Input pipeline, "default" or "groundinggpt" (modalities/preprocess.py); set from the
    # recipe's `model.preprocess`, None = not set = "default".
    preprocess: str | None = None
    recipe_key: str = "model.modalities.image"  # where this section sits in the recipe, for errors

    def __post_init__(self) -> None:
        self.tiny = TinyVisionShape.of(self.tiny)  # recipes give nested sections as mappings
        check_preprocess(self.preprocess, self.key("preprocess"))
        if not self.encoder:
            raise ValueError("ImageConfig.encoder must name a CLIP checkpoint or be 'tiny'")
        if self.image_size < 1:
            raise ValueError(f"ImageConfig.image_size must be >= 1, got {self.image_size}")
        if self.feature_layer == 0:
            raise ValueError("ImageConfig.feature_layer must not be 0 (the embeddings, before any layer)")
        if self.adapter_hidden_size is not None and self.adapter_hidden_size < 1:
            raise ValueError(f"ImageConfig.adapter_hidden_size must be >= 1 or None, got {self.adapter_hidden_size}")
        if self.adapter_merge < 1:
            raise ValueError(f"ImageConfig.adapter_merge must be >= 1, got {self.adapter_merge}")
        if self.max_pixels < 1:
            raise ValueError(f"ImageConfig.max_pixels must be >= 1, got {self.max_pixels}")
        if self.encoder == TINY and self.image_size % self.tiny.patch_size:
            raise ValueError(
                f"ImageConfig.image_size ({self.image_size}) must be a multiple of "
                f"ImageConfig.tiny.patch_size ({self.tiny.patch_size})"
            )

    def key(self, field_name: str) -> str:
        """The dotted recipe key of one field, e.g. ``model.modalities.image.encoder``."""
        return f"{self.recipe_key}.{field_name}"


# --- decoding -------------------------------------------------------------------------------
def decode_image(source: MediaSource, max_pixels: int, plain_rgb: bool = False) -> Media:
    """Read an image file into RGB uint8 ``Media`` (data (3, H, W), size (W, H)).

    ``plain_rgb``: the stored pixels through Pillow's ``convert("RGB")`` only, as GroundingGPT
    reads images: no EXIF rotation, an alpha channel dropped rather than composited.
    """
    name = source_name(source)
    img = _open_checked(read_bytes(source), name, max_pixels)
    try:
        if plain_rgb:
            rgb = img.convert("RGB")
        else:
            img = ImageOps.exif_transpose(img)  # also decodes the pixels
            rgb = to_rgb(img, name)
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt pixel data
        raise CorruptMediaError(name, f"image data cannot be decoded: {e}") from e
    data = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)  # (3, H, W) uint8, channels-last in memory
    return Media(data=data, source=name, size=rgb.size)


def _open_checked(raw: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open (header only) and refuse images over ``max_pixels`` before decoding."""
    try:
        with warnings.catch_warnings():  # our own limit below replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as e:
        raise MediaTooLargeError(name, str(e)) from e
    except UnidentifiedImageError as e:
        raise UnsupportedMediaError(name, "not an image format Pillow can read (content sniffed)") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptMediaError(name, f"unreadable image header: {e}") from e
    width, height = img.size
    if width * height > max_pixels:
        raise MediaTooLargeError(name, f"{width}x{height} = {width * height} pixels exceeds max_pixels={max_pixels}")
    if width < 1 or height < 1:
        raise CorruptMediaError(name, f"image has no pixels ({width}x{height})")
    return img


def to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Any Pillow mode -> RGB (8 bit), alpha composited onto CLIP's mean colour."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in _SIXTEEN_BIT:
        img = _sixteen_bit_to_l(img)
    if img.mode == "F":
        raise UnsupportedMediaError(name, "32-bit float images have no standard value range")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGB", img.size, mean_colour_uint8())
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return background
    return img.convert("RGB")


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    """16-bit grey -> 8-bit grey by value / 257 (65535 -> 255); Pillow's convert would clip."""
    values = np.asarray(img, dtype=np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), mode="L")


# --- pixel transforms (shared with video) ----------------------------------------------------
def square_offsets(width: int, height: int) -> tuple[int, int, int]:
    """(left, top, side) of an image inside its padded square (centred, integer offsets)."""
    side = max(width, height)
    return (side - width) // 2, (side - height) // 2, side


def groundinggpt_pad_colour() -> tuple[int, int, int]:
    """GroundingGPT's square fill: ``int(x * 255)`` of CLIP's mean, truncated: (122, 116, 104)."""
    return tuple(int(c * 255) for c in CLIP_MEAN)


def pad_to_square(pixels: torch.Tensor, colour: tuple[int, int, int] | None = None) -> torch.Tensor:
    """(..., 3, H, W) uint8 -> (..., 3, S, S), S = max(H, W), image centred on ``colour``
    (default: the mean colour rounded, ``mean_colour_uint8``)."""
    H, W = pixels.shape[-2:]
    left, top, side = square_offsets(W, H)
    # Filled channel by channel into a fresh contiguous tensor: cloning an expanded colour
    # would keep odd strides and make the resize that follows about 15x slower.
    out = torch.empty(*pixels.shape[:-2], side, side, dtype=pixels.dtype)
    for channel, value in enumerate(colour or mean_colour_uint8()):
        out[..., channel, :, :] = value
    out[..., top:top + H, left:left + W] = pixels
    return out


def resize_normalise(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 3, S, S) uint8 square -> (..., 3, size, size) float32, CLIP-normalised."""
    resized = TF.resize(pixels, [size, size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return normalise(resized)


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) 0-255 values (uint8 or float) -> float32 (x / 255 - mean) / std, CLIP's."""
    # Two in-place passes over the 0-255 values (a third of the time of three).
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1) * 255.0
    inv_std = 1.0 / (torch.tensor(CLIP_STD).view(3, 1, 1) * 255.0)
    return pixels.float().sub_(mean).mul_(inv_std)


def resize_like_clip_processor(square: torch.Tensor, size: int) -> torch.Tensor:
    """(3, S, S) uint8 -> (3, size, size) uint8 by Pillow's bicubic, as CLIPImageProcessor
    resizes (transformers 4.x, which GroundingGPT ran: a PIL image in, uint8 out)."""
    image = Image.fromarray(square.permute(1, 2, 0).numpy())
    resized = image.resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(resized)).permute(2, 0, 1)


# --- modality -------------------------------------------------------------------------------
def merge_patches(features: torch.Tensor, grid: int, k: int) -> torch.Tensor:
    """(B, grid^2, C) row-major patch tokens -> (B, (grid/k)^2, k^2 C): each k x k square
    becomes one token (its patches' channels in row-major order), squares row-major."""
    if k == 1:
        return features
    B, _, C = features.shape
    cells = grid // k
    squares = features.reshape(B, cells, k, cells, k, C).permute(0, 1, 3, 2, 4, 5)
    return squares.reshape(B, cells * cells, k * k * C)


@register_modality
class ImageModality(Modality):
    """Images -> (image_size / patch / adapter_merge)^2 decoder tokens through frozen CLIP and an MLP."""

    name = "image"
    record_key = "image"
    placeholder = "<image>"
    token_prefix = "im"
    config_class = ImageConfig

    def __init__(self, config: ImageConfig, d_model: int, architecture: Mapping[str, Any] | None = None):
        super().__init__(config, d_model)
        if architecture:  # a saved folder's record: the shape only, weights come from the folder
            clip = clip_vision_from_record(architecture["clip"], config.key("encoder"), config.image_size)
        else:
            clip = load_clip_vision(config.encoder, config.key("encoder"), config.tiny, config.image_size)
        self.encoder = CLIPFeatures(clip, config.feature_layer, drop_cls=True)
        merge = config.adapter_merge
        self.grid = self.encoder.image_size // self.encoder.patch_size  # patches per side
        if self.grid % merge:
            raise ValueError(
                f"{config.key('adapter_merge')}={merge} does not divide the encoder's {self.grid} x {self.grid} "
                "patch grid"
            )
        hidden = config.adapter_hidden_size or d_model
        self.adapter = nn.Sequential(
            nn.Linear(merge * merge * self.encoder.hidden_size, hidden), nn.GELU(), nn.Linear(hidden, d_model)
        )
        self.freeze_encoder()

    @property
    def num_tokens(self) -> int:
        return (self.grid // self.config.adapter_merge) ** 2

    def architecture(self) -> dict[str, Any]:
        """{"clip": the CLIP vision config}: the encoder's shape, whatever its source was."""
        return {"clip": clip_vision_record(self.encoder)}

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        """(B, grid^2, C) patch features, row-major -> (B, num_tokens, d_model)."""
        return self.adapter(merge_patches(features, self.grid, self.config.adapter_merge))

    def load(self, source: MediaSource) -> Media:
        plain = self.config.preprocess == GROUNDINGGPT
        return decode_image(source, self.config.max_pixels, plain_rgb=plain)

    def transform(self, media: Media, train: bool) -> torch.Tensor:
        """(3, H, W) uint8 -> (3, S, S) float; ``train`` changes nothing (boxes must not move)."""
        if self.config.preprocess == GROUNDINGGPT:
            square = pad_to_square(media.data, groundinggpt_pad_colour())
            return normalise(resize_like_clip_processor(square, self.config.image_size))
        return resize_normalise(pad_to_square(media.data), self.config.image_size)
