"""Load an EVA ViT (``modalities.eva_vit``) from ``"tiny"``, LAVIS's layout or a transformers BLIP-2 folder.

Layouts:

- LAVIS (``eva_vit_g.pth``, or any ``.pth``/``.safetensors`` state dict with LAVIS's
  ``eva_vit`` names): loads without renames. Heads are not stored in the file: EVA's are 88
  wide (``num_heads = width // 88``, as ``create_eva_vit_g``), so the width must be a multiple
  of 88.
- transformers (a ``Blip2ForConditionalGeneration``/``Blip2Model`` folder, whose tower is
  ``vision_model.*``, or a ``Blip2VisionModel`` folder; or a hub id): each key is renamed
  onto LAVIS's, and the fused ``qkv.bias`` (q | k | v) becomes ``q_bias`` and ``v_bias``.
  ``post_layernorm`` is BLIP-2's ``ln_vision``: the frame Q-Former reads it (from
  ``frame_qformer``), not the tower.

Either way only the blocks the Q-Former reads are kept (BLIP-2: 39; ``eva_vit_g.pth`` has 40),
the position embedding is interpolated when the file's patch grid differs from the recipe's
image size, and then every remaining key must fit: a missing, unknown or mis-shaped key is a
``CheckpointFormatError`` naming it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re

import torch
import torch.nn.functional as F

from modalities.checkpoints import TINY, load_state_dict_file, load_strict, read_hf_weights, resolve_pretrained
from modalities.clip import TinyVisionShape
from modalities.errors import CheckpointFormatError
from modalities.eva_vit import BLIP2_EVA_BLOCKS, EVA_HEAD_WIDTH, EvaViT, EvaViTShape, init_tiny_

_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_SHOWN = 5  # how many offending keys an error message lists


def load_eva_vit(location: str, recipe_key: str, tiny: TinyVisionShape, image_size: int,
                 blocks: int | None = None) -> EvaViT:
    """An EVA ViT from ``"tiny"``, a LAVIS-layout file, or a transformers BLIP-2 folder / hub id.

    Args:
        location: ``"tiny"``, a ``.pth``/``.safetensors`` file, a folder, or a hub id.
        recipe_key: the recipe key that set ``location``, for error messages.
        tiny: the shape of the tiny build.
        image_size: input side in pixels; a checkpoint of another grid has its position
            embedding interpolated.
        blocks: how many blocks to run (the Q-Former reads the last one's output); None =
            BLIP-2's 39 for a checkpoint, all of them for a tiny tower.

    Raises:
        CheckpointNotFoundError: the file, folder or hub id is not available.
        CheckpointFormatError: the weights are not an EVA ViT or do not fit it (names the keys).
    """
    if location == TINY:
        shape = EvaViTShape.tiny(tiny, image_size)
        if blocks is not None:
            if not 1 <= blocks <= shape.depth:
                raise CheckpointFormatError(location, recipe_key, f"the tiny tower has {shape.depth} blocks, {blocks} asked for")
            shape = dataclasses.replace(shape, depth=blocks)
        return init_tiny_(EvaViT(shape), tiny.position_init_std)
    path = resolve_pretrained(location, recipe_key)
    if os.path.isfile(path):
        state, num_heads, norm_eps = load_state_dict_file(path, recipe_key), None, EvaViTShape.norm_eps
    else:
        state, num_heads, norm_eps = _read_hf_tower(path, recipe_key)
    return eva_vit_from_state(state, location, recipe_key, image_size, blocks, num_heads, norm_eps)


def eva_vit_from_state(state: dict[str, torch.Tensor], location: str, recipe_key: str, image_size: int,
                       blocks: int | None = None, num_heads: int | None = None,
                       norm_eps: float = EvaViTShape.norm_eps) -> EvaViT:
    """An EVA ViT holding ``state`` (LAVIS ``eva_vit`` names), cut to ``blocks`` blocks.

    ``num_heads`` None = ``width // 88`` (EVA's head width). Blocks past ``blocks`` are
    dropped (None = BLIP-2's 39); everything else must fit exactly.
    """
    shape = _shape_of(state, location, recipe_key, image_size, num_heads, norm_eps)
    available = shape.depth
    keep = BLIP2_EVA_BLOCKS if blocks is None else blocks
    if not 1 <= keep <= available:
        raise CheckpointFormatError(
            location, recipe_key,
            f"it holds {available} EVA blocks, but {keep} are to be run "
            f"(BLIP-2 runs {BLIP2_EVA_BLOCKS}; set the number with frame_feature_layer)",
        )
    # BLIP-2 reads the 39th block's output; the 40th of eva_vit_g.pth is never run.
    state = {k: v for k, v in state.items() if not ((m := _BLOCK.match(k)) and int(m.group(1)) >= keep)}
    shape = dataclasses.replace(shape, depth=keep)
    if "pos_embed" in state:
        state["pos_embed"] = _fit_positions(state["pos_embed"], shape.grid, location, recipe_key)
    model = EvaViT(shape)
    load_strict(model, state, location, recipe_key)
    return model


def _shape_of(state: dict[str, torch.Tensor], location: str, recipe_key: str, image_size: int,
              num_heads: int | None, norm_eps: float) -> EvaViTShape:
    """The tower shape a LAVIS-layout state dict implies (all its blocks), at ``image_size``."""
    needed = ("cls_token", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
    absent = [k for k in needed if k not in state]
    if absent:
        raise CheckpointFormatError(
            location, recipe_key,
            f"not an EVA ViT in LAVIS's eva_vit layout: no {absent}; has e.g. {sorted(state)[:_SHOWN]}",
        )
    width = state["cls_token"].shape[-1]
    patch = state["patch_embed.proj.weight"].shape[-1]
    if num_heads is None:
        if width % EVA_HEAD_WIDTH:
            raise CheckpointFormatError(
                location, recipe_key,
                f"width {width} is not a multiple of EVA's {EVA_HEAD_WIDTH}-wide heads, so the head count "
                "cannot be known from a LAVIS-layout file",
            )
        num_heads = width // EVA_HEAD_WIDTH
    if image_size % patch:
        raise CheckpointFormatError(location, recipe_key, f"image_size {image_size} is not a multiple of its {patch} px patches")
    depth = 1 + max(int(m.group(1)) for k in state if (m := _BLOCK.match(k)))
    return EvaViTShape(image_size=image_size, patch_size=patch, width=width, depth=depth, num_heads=num_heads,
                       mlp_width=state["blocks.0.mlp.fc1.weight"].shape[0], norm_eps=norm_eps)


def _fit_positions(pos: torch.Tensor, grid: int, location: str, recipe_key: str) -> torch.Tensor:
    """(1, 1 + g^2, C) position embedding -> (1, 1 + grid^2, C), bicubic on the patch rows.

    As LAVIS's ``interpolate_pos_embed``: the CLS row is kept, the g x g patch rows are
    resized in fp32 (bicubic, align_corners=False), row-major as the patches are.
    """
    if pos.dim() != 3 or pos.shape[0] != 1:
        raise CheckpointFormatError(location, recipe_key, f"pos_embed has shape {tuple(pos.shape)}, expected (1, 1 + g^2, C)")
    source = math.isqrt(pos.shape[1] - 1)
    if source**2 != pos.shape[1] - 1:
        raise CheckpointFormatError(location, recipe_key, f"pos_embed has {pos.shape[1]} rows, not 1 + a square grid")
    if source == grid:
        return pos
    patches = pos[:, 1:].float().reshape(1, source, source, -1).permute(0, 3, 1, 2)  # (1, C, g, g)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)
    return torch.cat([pos[:, :1].float(), patches], dim=1).to(pos.dtype)


# --- transformers' BLIP-2 vision tower -> LAVIS names -----------------------------------------
_HF_RENAMES = [(re.compile(p), r) for p, r in (
    (r"^embeddings\.class_embedding$", "cls_token"),
    (r"^embeddings\.position_embedding$", "pos_embed"),
    (r"^embeddings\.patch_embedding\.(weight|bias)$", r"patch_embed.proj.\1"),
    (r"^encoder\.layers\.(\d+)\.layer_norm([12])\.(weight|bias)$", r"blocks.\1.norm\2.\3"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.qkv\.weight$", r"blocks.\1.attn.qkv.weight"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.projection\.(weight|bias)$", r"blocks.\1.attn.proj.\2"),
    (r"^encoder\.layers\.(\d+)\.mlp\.(fc[12])\.(weight|bias)$", r"blocks.\1.mlp.\2.\3"),
)]
_HF_FUSED_BIAS = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.qkv\.bias$")
_HF_LN_VISION = re.compile(r"^post_layernorm\.(weight|bias)$")  # BLIP-2's ln_vision: the Q-Former's


def _read_hf_tower(path: str, recipe_key: str) -> tuple[dict[str, torch.Tensor], int, float]:
    """(LAVIS-named state, heads, LayerNorm eps) of the EVA tower in a transformers folder / hub id."""
    if not os.path.isdir(path):  # a reachable hub id: configs and safetensors weights only
        from huggingface_hub import snapshot_download

        path = snapshot_download(path, allow_patterns=["*.json", "*.safetensors"])
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise CheckpointFormatError(path, recipe_key, "a folder without config.json is not a transformers BLIP-2 model")
    with open(config_file) as f:
        raw = json.load(f)
    model_type = raw.get("model_type")
    if model_type == "blip-2":
        vision, prefix = raw.get("vision_config", {}), "vision_model."
    elif model_type == "blip_2_vision_model":
        vision, prefix = raw, ""
    else:
        raise CheckpointFormatError(
            path, recipe_key,
            f"config.json has model_type {model_type!r}; an EVA tower comes from a BLIP-2 folder "
            "('blip-2', its vision_model) or a Blip2VisionModel folder ('blip_2_vision_model')",
        )
    from transformers import Blip2VisionConfig

    config = Blip2VisionConfig(**{k: v for k, v in vision.items() if k != "model_type"})
    if config.hidden_act != "gelu" or not config.qkv_bias:
        raise CheckpointFormatError(
            path, recipe_key,
            f"vision tower has hidden_act={config.hidden_act!r}, qkv_bias={config.qkv_bias}; "
            "EVA ViT uses exact GELU ('gelu') and q/v biases",
        )
    tensors = read_hf_weights(path, (prefix,) if prefix else ("",), recipe_key)
    if prefix:
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return _map_hf_keys(tensors, path, recipe_key), config.num_attention_heads, config.layer_norm_eps


def _map_hf_keys(tensors: dict[str, torch.Tensor], path: str, recipe_key: str) -> dict[str, torch.Tensor]:
    """transformers ``Blip2VisionModel`` names -> LAVIS ``eva_vit`` names; unknown keys are errors."""
    state: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for name, tensor in tensors.items():
        if _HF_LN_VISION.match(name):
            continue  # ln_vision: loaded into the frame Q-Former's vision_norm from frame_qformer
        if m := _HF_FUSED_BIAS.match(name):
            q, _k, v = tensor.chunk(3)  # the key third never changes attention (softmax cancels it)
            state[f"blocks.{m.group(1)}.attn.q_bias"] = q
            state[f"blocks.{m.group(1)}.attn.v_bias"] = v
            continue
        new = next((p.sub(r, name) for p, r in _HF_RENAMES if p.match(name)), None)
        if new is None:
            unknown.append(name)
        else:
            state[new] = tensor
    if unknown:
        raise CheckpointFormatError(
            path, recipe_key, f"{len(unknown)} keys are not in transformers' Blip2VisionModel layout: {sorted(unknown)[:_SHOWN]}"
        )
    return state
