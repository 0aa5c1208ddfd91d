"""ImageBind's audio branch on its own: the frozen encoder of the audio modality.

ImageBind embeds each window's (1, 128, 204) log-mel "image" as: 16 x 16 patches with
stride 10 (12 x 19 = 228 overlapping patches) + a CLS token + learned positions, a
pre-norm transformer (12 blocks, 768-d, 12 heads, attention with learned bias K/V), then
LayerNorm -> CLS token -> Linear(768 -> 1024), then L2 normalisation x 20 (a fixed logit
scale). GroundingGPT (through Video-LLaMA) feeds the Q-Former this last, normalised and
scaled, 1024-d vector of every window, so that is what ``forward`` returns.

Only the audio branch is built: the full ``imagebind_huge`` would also allocate the vision
(32 x 1280-d), text and other trunks, about 1.2 B parameters the audio modality never uses.
The submodules are ImageBind's own classes, held under the same names as in
``ImageBindModel`` (``modality_trunks.audio...``), so the official checkpoint's audio keys
load unchanged.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
import zipfile
from dataclasses import dataclass
from functools import partial

import torch
import torchvision.transforms._functional_tensor as _functional_tensor
from safetensors import SafetensorError, safe_open
from torch import nn

from modalities.checkpoints import TINY, load_strict
from modalities.errors import CheckpointFormatError, CheckpointNotFoundError


def _import_imagebind():
    """Import the parts of imagebind-unofficial 0.1.1 this module uses, on current torchvision.

    ``import imagebind`` runs its ``data`` module, which imports pytorchvideo 0.1.5, which
    imports ``torchvision.transforms.functional_tensor``: torchvision 0.17 renamed that
    module to ``_functional_tensor``. Registering the old name as an alias of the new one
    (its functions are unchanged) is the only patch needed, and this is its only place.
    imagebind also imports ``pkg_resources`` (setuptools < 81) and ``einops`` without
    declaring them: a missing one is reported with the command that installs it.
    """
    sys.modules.setdefault("torchvision.transforms.functional_tensor", _functional_tensor)
    install_hints = {"pkg_resources": "setuptools<81", "einops": "einops"}
    try:
        with warnings.catch_warnings():
            # Deprecation notices from code we cannot change, raised at import time only:
            # imagebind.data imports pkg_resources; pytorchvideo uses torch.jit.script_method.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            warnings.filterwarnings("ignore", message=".*script_method. is deprecated")
            from imagebind.models import helpers, multimodal_preprocessors, transformer
    except ModuleNotFoundError as e:
        if e.name in install_hints:
            raise ImportError(
                f"imagebind-unofficial needs `{e.name}`: pip install '{install_hints[e.name]}'"
            ) from e
        raise
    return helpers, multimodal_preprocessors, transformer


_helpers, _preprocessors, _transformer = _import_imagebind()

MODALITY = "audio"  # ImageBind's ModalityType.AUDIO: the key of every audio submodule
# Every state-dict key of the audio branch starts with one of these.
AUDIO_KEY_PREFIXES = tuple(
    f"modality_{part}.{MODALITY}."
    for part in ("preprocessors", "trunks", "heads", "postprocessors")
)
LOGIT_SCALE = 20.0  # ImageBind's fixed (not learned) scale of the normalised audio embedding


@dataclass(frozen=True)
class AudioEncoderDims:
    """Sizes of ImageBind's audio branch."""

    embed_dim: int  # transformer width
    num_blocks: int  # transformer blocks
    num_heads: int  # attention heads; must divide embed_dim
    out_dim: int  # width of each window's embedding (the head's projection)
    patch_size: int = 16  # square patches of the (mel bins x frames) image
    patch_stride: int = 10  # patch stride: neighbouring patches overlap by 6


ENCODER_SIZES = {
    # imagebind_huge(): the audio branch keeps ImageBindModel's default dims, out_embed_dim 1024.
    "huge": AudioEncoderDims(embed_dim=768, num_blocks=12, num_heads=12, out_dim=1024),
    TINY: AudioEncoderDims(embed_dim=32, num_blocks=2, num_heads=2, out_dim=64),  # tests
}


class ImageBindAudioEncoder(nn.Module):
    """(B, W, 1, mel_bins, frames) features -> (B, W, out_dim): one embedding per window."""

    def __init__(self, dims: AudioEncoderDims, num_mel_bins: int = 128, target_frames: int = 204):
        super().__init__()
        self.dims = dims
        self.modality_preprocessors = nn.ModuleDict(
            {MODALITY: _preprocessor(dims, num_mel_bins, target_frames)}
        )
        self.modality_trunks = nn.ModuleDict({MODALITY: _trunk(dims)})
        self.modality_heads = nn.ModuleDict({MODALITY: _head(dims)})
        self.modality_postprocessors = nn.ModuleDict({MODALITY: _postprocessor()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, W = x.shape[:2]
        inputs = self.modality_preprocessors[MODALITY](audio=x.flatten(0, 1))  # (B*W, 1, M, T)
        tokens = self.modality_trunks[MODALITY](**inputs["trunk"])  # (B*W, 1 + patches, D)
        embedding = self.modality_heads[MODALITY](tokens, **inputs["head"])  # (B*W, out)
        return self.modality_postprocessors[MODALITY](embedding).view(B, W, -1)


def _preprocessor(dims: AudioEncoderDims, num_mel_bins: int, target_frames: int) -> nn.Module:
    stem = _preprocessors.PatchEmbedGeneric(
        proj_stem=[
            nn.Conv2d(
                in_channels=1,
                out_channels=dims.embed_dim,
                kernel_size=dims.patch_size,
                stride=dims.patch_stride,
                bias=False,
            )
        ],
        norm_layer=nn.LayerNorm(normalized_shape=dims.embed_dim),
    )
    return _preprocessors.AudioPreprocessor(
        img_size=[1, num_mel_bins, target_frames],
        num_cls_tokens=1,
        pos_embed_fn=partial(_preprocessors.SpatioTemporalPosEmbeddingHelper, learnable=True),
        audio_stem=stem,
    )


def _trunk(dims: AudioEncoderDims) -> nn.Module:
    return _transformer.SimpleTransformer(
        embed_dim=dims.embed_dim,
        num_blocks=dims.num_blocks,
        ffn_dropout_rate=0.0,
        drop_path_rate=0.0,  # ImageBind trains with 0.1; the encoder here never trains
        attn_target=partial(
            _transformer.MultiheadAttention,
            embed_dim=dims.embed_dim,
            num_heads=dims.num_heads,
            bias=True,
            add_bias_kv=True,
        ),
        pre_transformer_layer=nn.Sequential(
            nn.Identity(),  # the audio trunk has no pre-LayerNorm; kept for the key layout
            _helpers.EinOpsRearrange("b l d -> l b d"),
        ),
        post_transformer_layer=_helpers.EinOpsRearrange("l b d -> b l d"),
    )


def _head(dims: AudioEncoderDims) -> nn.Module:
    return nn.Sequential(
        nn.LayerNorm(normalized_shape=dims.embed_dim, eps=1e-6),
        _helpers.SelectElement(index=0),  # the CLS token
        nn.Linear(dims.embed_dim, dims.out_dim, bias=False),
    )


def _postprocessor() -> nn.Module:
    return nn.Sequential(
        _helpers.Normalize(dim=-1),
        _helpers.LearnableLogitScaling(logit_scale_init=LOGIT_SCALE, learnable=False),
    )


def build_audio_encoder(
    encoder: str, recipe_key: str, num_mel_bins: int = 128, target_frames: int = 204
) -> ImageBindAudioEncoder:
    """The frozen audio encoder a config names.

    Args:
        encoder: "tiny" for a small random-weight branch (tests, smoke runs), else the path
            of ``imagebind_huge.pth`` (or a ``.safetensors`` file with the same keys).
        recipe_key: the recipe key that sets ``encoder``, named in errors.
        num_mel_bins, target_frames: size of the feature "image" (sizes the positions).

    Raises:
        CheckpointNotFoundError: ``encoder`` is not a file (checked before anything is built).
        CheckpointFormatError: the file lacks ImageBind-huge audio-branch weights.
    """
    dims = encoder_dims(encoder)
    if encoder == TINY:
        return ImageBindAudioEncoder(dims, num_mel_bins, target_frames)
    return load_audio_encoder(encoder, recipe_key, dims, num_mel_bins, target_frames)


def encoder_dims(encoder: str) -> AudioEncoderDims:
    """The dims ``build_audio_encoder(encoder, ...)`` builds: tiny for "tiny", else huge."""
    return ENCODER_SIZES[TINY if encoder == TINY else "huge"]


def load_audio_encoder(
    path: str,
    recipe_key: str,
    dims: AudioEncoderDims,
    num_mel_bins: int = 128,
    target_frames: int = 204,
    key_prefix: str = "",
) -> ImageBindAudioEncoder:
    """An audio branch of ``dims`` with the audio weights of the checkpoint at ``path``.

    Args:
        key_prefix: prefix of the audio keys in the file, removed before loading: "" for
            ImageBind's own checkpoint, e.g. "model.audio_encoder." in a model that embeds it.

    Raises:
        CheckpointNotFoundError: no file at ``path`` (checked before the model is built).
        CheckpointFormatError: missing, unexpected or mis-shaped audio keys.
    """
    state = load_audio_state_dict(path, recipe_key, key_prefix)  # fails fast: nothing built yet
    encoder = ImageBindAudioEncoder(dims, num_mel_bins, target_frames)
    load_strict(encoder, state, path, recipe_key)
    return encoder


def load_audio_state_dict(
    path: str, recipe_key: str, key_prefix: str = ""
) -> dict[str, torch.Tensor]:
    """The audio branch's tensors of an ImageBind checkpoint; all other keys are dropped.

    ``.pth``/``.pt`` files are read with ``torch.load(weights_only=True)``: tensors only, no
    pickled code runs. Zip-format files are memory-mapped, so the 4.5 GB ``imagebind_huge.pth``
    costs only its audio branch (86 M parameters) in memory, which is why this does not use
    ``checkpoints.load_state_dict_file``. ``.safetensors`` files are read key by key.

    Raises:
        CheckpointNotFoundError: no such file.
        CheckpointFormatError: unreadable file, or no audio-branch keys in it.
    """
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(path, recipe_key, "no such file")
    prefixes = tuple(key_prefix + p for p in AUDIO_KEY_PREFIXES)
    if path.endswith(".safetensors"):
        state = _read_safetensors(path, prefixes, recipe_key)
    else:
        state = _read_torch(path, recipe_key)
    audio = {k[len(key_prefix) :]: v for k, v in state.items() if k.startswith(prefixes)}
    if not audio:
        example = next(iter(state), "none")
        raise CheckpointFormatError(
            path,
            recipe_key,
            f"no ImageBind audio keys ({prefixes[1]}...) among its {len(state)} keys, "
            f"e.g. {example!r}",
        )
    return audio


def _read_torch(path: str, recipe_key: str) -> dict[str, torch.Tensor]:
    mmap = zipfile.is_zipfile(path)  # only zip-format (torch >= 1.6) files can be mapped
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise CheckpointFormatError(
            path,
            recipe_key,
            f"cannot be read as plain tensors with torch.load(weights_only=True): {e}",
        ) from e
    if not isinstance(state, dict):
        raise CheckpointFormatError(
            path, recipe_key, f"holds a {type(state).__name__}, not a state dict"
        )
    return state


def _read_safetensors(
    path: str, prefixes: tuple[str, ...], recipe_key: str
) -> dict[str, torch.Tensor]:
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefixes)}
    except SafetensorError as e:
        raise CheckpointFormatError(
            path, recipe_key, f"not a readable safetensors file: {e}"
        ) from e
