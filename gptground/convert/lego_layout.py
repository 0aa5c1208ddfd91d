"""The released GroundingGPT-7B checkpoint's layout, and where each of its keys goes here.

The release (``zwli/GroundingGPT``) is ``LEGOLlamaForCausalLM`` (``lego/LEGO.py`` of
``lzw-lzw/GroundingGPT``), a LlamaForCausalLM whose ``model`` also holds, as attributes:

    mm_vision_projector      Sequential(Linear(1024, d), GELU, Linear(d, d))  image adapter
    visual_encoder, ln_vision  EVA ViT-g/14 (LAVIS eva_vit) + its LayerNorm     video frames
    Qformer, query_tokens    BLIP-2's Q-Former (LAVIS BertLMHeadModel) + 32 queries, frozen
    llama_proj               Linear(768, d)                                      video adapter
    video_frame_position_embedding  Embedding(max_frame, 768)
    video_Qformer, video_query_tokens  2-layer Q-Former reading 768-d frame tokens, 64 queries
    audio_encoder            the whole ImageBind-huge (all six modalities)
    audio_Qformer, audio_query_tokens  2-layer Q-Former reading 1024-d clip embeddings, 8 queries
    audio_position_embedding Embedding(sound_token_len, 1024)
    audio_llama_proj         Linear(768, d)                                      audio adapter

The CLIP image tower (``vision_tower``) is held in a Python list, so it is in no state dict:
it comes from ``config.mm_vision_tower``. Every key of the checkpoint must match exactly one
rule of ``RENAMES`` or ``DROPPED``; anything else stops the conversion.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gptground.convert.errors import ConversionError
from gptground.convert.shards import TensorInfo
from modalities.checkpoints import lavis_qformer_name, rename_keys

MODEL_TYPE = "LEGO"

# (pattern, why) for source keys that are read by nothing here. Each is optional: a release
# without such keys converts the same.
DROPPED: list[tuple[re.Pattern, str]] = [(re.compile(p), why) for p, why in (
    (r"^model\.audio_encoder\.modality_(preprocessors|trunks|heads|postprocessors)\.(vision|text|depth|thermal|imu)\.",
     "ImageBind-huge's other modalities: LEGO.py builds the whole imagebind_huge() but its "
     "encode_audioQformer only runs the audio branch"),
    (r"^model\.(Qformer|video_Qformer|audio_Qformer)\.bert\.embeddings\.position_ids$",
     "the index buffer of the BERT position embeddings, which LEGO.py removes (queries carry no "
     "text positions); nothing reads it"),
    (r"^model\.(Qformer|video_Qformer|audio_Qformer)\.cls\.",
     "the Q-Former's masked-LM head, set to None in LEGO.py; absent from the release, dropped if a "
     "checkpoint saved before that removal has it"),
    (r"^model\.(Qformer|video_Qformer|audio_Qformer)\.bert\.embeddings\.(word_embeddings|position_embeddings)\.",
     "the Q-Former's text embeddings, set to None in LEGO.py (only the queries are embedded)"),
    (r"^model\.(Qformer|video_Qformer|audio_Qformer)\.bert\.encoder\.layer\.\d+\.(intermediate|output)\.",
     "each Q-Former layer's text feed-forward, set to None in LEGO.py; queries use "
     "intermediate_query/output_query"),
    (r"^model\.(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$",
     "rotary frequencies that transformers < 4.31 saved as a buffer; recomputed from the config"),
)]


def _qformer(prefix: str):
    """A rename for ``model.<X>Qformer.bert.*``: LAVIS's BERT names -> transformers' Blip2QFormer."""
    def rename(rest: str) -> str | None:
        name = lavis_qformer_name(f"Qformer.bert.{rest}")
        return None if name is None else prefix + name
    return rename


# (source pattern, target: a replacement template, or a function of the first group). The
# targets are state-dict keys of a GroundingModel: decoder.* and modalities.<name>.*.
RENAMES: list[tuple[re.Pattern, object]] = [(re.compile(p), t) for p, t in (
    (r"^model\.embed_tokens\.weight$", "decoder.model.embed_tokens.weight"),
    (r"^model\.layers\.(\d+\..+)$", r"decoder.model.layers.\1"),
    (r"^model\.norm\.weight$", "decoder.model.norm.weight"),
    (r"^lm_head\.weight$", "decoder.lm_head.weight"),
    # image: CLIP patch features -> Linear, GELU, Linear (indices 0 and 2 of both Sequentials)
    (r"^model\.mm_vision_projector\.([02]\.(?:weight|bias))$", r"modalities.image.adapter.\1"),
    # video, frozen per frame: EVA tower (LAVIS names kept), ln_vision, BLIP-2 Q-Former
    (r"^model\.visual_encoder\.(.+)$", r"modalities.video.encoder.eva.\1"),
    (r"^model\.ln_vision\.(weight|bias)$", r"modalities.video.encoder.qformer.vision_norm.\1"),
    (r"^model\.query_tokens$", "modalities.video.encoder.qformer.query_tokens"),
    (r"^model\.Qformer\.bert\.(.+)$", _qformer("modalities.video.encoder.qformer.")),
    # video, trained: frame positions, video Q-Former, projection into the decoder
    (r"^model\.video_frame_position_embedding\.weight$", "modalities.video.adapter.position_embedding"),
    (r"^model\.video_query_tokens$", "modalities.video.adapter.query_tokens"),
    (r"^model\.video_Qformer\.bert\.(.+)$", _qformer("modalities.video.adapter.")),
    (r"^model\.llama_proj\.(weight|bias)$", r"modalities.video.adapter.projection.\1"),
    # audio: ImageBind's audio branch (ImageBind's own names), window positions, Q-Former, projection
    (r"^model\.audio_encoder\.(modality_(?:preprocessors|trunks|heads|postprocessors)\.audio\..+)$",
     r"modalities.audio.encoder.\1"),
    (r"^model\.audio_position_embedding\.weight$", "modalities.audio.adapter.position_embedding"),
    (r"^model\.audio_query_tokens$", "modalities.audio.adapter.query_tokens"),
    (r"^model\.audio_Qformer\.bert\.(.+)$", _qformer("modalities.audio.adapter.")),
    (r"^model\.audio_llama_proj\.(weight|bias)$", r"modalities.audio.adapter.projection.\1"),
)]


def target_key(source: str) -> str | None:
    """The GroundingModel key of one source key; None when no rule maps it."""
    for pattern, target in RENAMES:
        match = pattern.match(source)
        if match:
            return target(match.group(1)) if callable(target) else match.expand(target)
    return None


def is_dropped(source: str) -> bool:
    return any(pattern.search(source) for pattern, _ in DROPPED)


def plan_keys(keys: Iterable[str]) -> dict[str, str]:
    """source key -> target key for every kept key.

    Raises:
        ConversionError: keys that no rule maps and the drop list does not name, or two
            source keys that would fill one target.
    """
    plan, unknown = rename_keys(keys, target_key, is_dropped)
    if unknown:
        raise ConversionError(
            f"{len(unknown)} keys are not in the released GroundingGPT layout (neither mapped nor on the drop "
            f"list): {sorted(unknown)[:10]}"
        )
    targets: dict[str, str] = {}
    for source, target in plan.items():
        if target in targets:
            raise ConversionError(f"{targets[target]!r} and {source!r} both map to {target!r}")
        targets[target] = source
    return plan


# --- config.json ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LegoConfig:
    """The LEGO fields of the release's config.json that fix what is built here."""

    raw: Mapping  # the whole config.json (LlamaConfig fields + LEGO fields)
    mm_vision_tower: str  # CLIP tower: hub id or folder (openai/clip-vit-large-patch14-336)
    mm_vision_select_layer: int  # CLIP hidden state the image adapter reads (-2)
    max_frame: int  # video frames (rows of video_frame_position_embedding)
    video_token_len: int  # decoder tokens per video (video Q-Former queries)
    sound_token_len: int  # decoder tokens per sound (audio Q-Former queries)


def read_lego_config(folder: str) -> LegoConfig:
    """The release's config.json, checked to be a LEGO config with the fields used here."""
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise ConversionError(f"{folder}: no config.json")
    with open(path) as f:
        raw = json.load(f)
    if raw.get("model_type") != MODEL_TYPE:
        raise ConversionError(
            f"{path}: model_type is {raw.get('model_type')!r}, not {MODEL_TYPE!r} (GroundingGPT's LEGOConfig)"
        )
    needed = ("mm_vision_tower", "max_frame", "video_token_len", "sound_token_len", "hidden_size", "vocab_size")
    absent = [k for k in needed if k not in raw]
    if absent:
        raise ConversionError(f"{path}: LEGO config lacks {absent}")
    return LegoConfig(
        raw=raw,
        mm_vision_tower=str(raw["mm_vision_tower"]),
        mm_vision_select_layer=int(raw.get("mm_vision_select_layer", -1)),  # LEGO.py's getattr default
        max_frame=int(raw["max_frame"]),
        video_token_len=int(raw["video_token_len"]),
        sound_token_len=int(raw["sound_token_len"]),
    )


# --- shapes implied by the checkpoint ---------------------------------------------------------
BERT_HEAD_WIDTH = 64  # LEGO's Q-Formers are bert-base-uncased configs: 768 wide, 12 heads of 64
IMAGEBIND_HEAD_WIDTH = 64  # ImageBind-huge's audio trunk: 768 wide, 12 heads of 64


def _shape(layout: Mapping[str, TensorInfo], key: str) -> tuple[int, ...]:
    if key not in layout:
        raise ConversionError(f"the checkpoint lacks {key!r}")
    return layout[key].shape


def _indices(layout: Mapping[str, TensorInfo], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in layout if (m := regex.match(k))})


@dataclass(frozen=True)
class QFormerShape:
    """A Q-Former's shape read from the checkpoint (heads: width / 64, as in BERT-base)."""

    num_layers: int
    hidden_size: int
    num_heads: int
    intermediate_size: int
    num_queries: int
    encoder_hidden_size: int
    cross_attention_frequency: int


def qformer_shape(layout: Mapping[str, TensorInfo], name: str, queries: str) -> QFormerShape:
    """The shape of ``model.<name>`` (a LAVIS BertLMHeadModel) with queries ``model.<queries>``."""
    layer = rf"^model\.{name}\.bert\.encoder\.layer\.(\d+)\."
    layers = _indices(layout, layer)
    cross = _indices(layout, layer + r"crossattention\.")
    if not layers or not cross:
        raise ConversionError(f"the checkpoint has no model.{name}.bert.encoder.layer.* with cross-attention")
    _, num_queries, hidden = _shape(layout, f"model.{queries}")
    prefix = f"model.{name}.bert.encoder.layer"
    return QFormerShape(
        num_layers=max(layers) + 1,
        hidden_size=hidden,
        num_heads=max(1, hidden // BERT_HEAD_WIDTH),
        intermediate_size=_shape(layout, f"{prefix}.0.intermediate_query.dense.weight")[0],
        num_queries=num_queries,
        encoder_hidden_size=_shape(layout, f"{prefix}.{cross[0]}.crossattention.self.key.weight")[1],
        cross_attention_frequency=cross[1] - cross[0] if len(cross) > 1 else max(layers) + 1,
    )


def eva_shape_record(layout: Mapping[str, TensorInfo]) -> dict:
    """``EvaViTShape`` fields of ``model.visual_encoder`` (heads: width / 88, as EVA ViT-g)."""
    from modalities.eva_vit import EVA_HEAD_WIDTH, EvaViTShape

    width = _shape(layout, "model.visual_encoder.cls_token")[-1]
    patch = _shape(layout, "model.visual_encoder.patch_embed.proj.weight")[-1]
    positions = _shape(layout, "model.visual_encoder.pos_embed")[1] - 1  # minus the CLS row
    grid = round(positions**0.5)
    if grid * grid != positions or width % EVA_HEAD_WIDTH:
        raise ConversionError(
            f"model.visual_encoder is not an EVA ViT-g: {positions} position rows (not a square grid) or width "
            f"{width} (not a multiple of {EVA_HEAD_WIDTH})"
        )
    return EvaViTShape(
        image_size=grid * patch, patch_size=patch, width=width,
        depth=len(_indices(layout, r"^model\.visual_encoder\.blocks\.(\d+)\.")),
        num_heads=width // EVA_HEAD_WIDTH,
        mlp_width=_shape(layout, "model.visual_encoder.blocks.0.mlp.fc1.weight")[0],
    ).record()


def audio_encoder_dims(layout: Mapping[str, TensorInfo]) -> dict:
    """``AudioEncoderDims`` fields of ImageBind's audio branch inside ``model.audio_encoder``."""
    base = "model.audio_encoder.modality_"
    embed_dim = _shape(layout, f"{base}trunks.audio.blocks.0.attn.in_proj_weight")[1]
    return {
        "embed_dim": embed_dim,
        "num_blocks": len(_indices(layout, rf"^{re.escape(base)}trunks\.audio\.blocks\.(\d+)\.")),
        "num_heads": max(1, embed_dim // IMAGEBIND_HEAD_WIDTH),
        "out_dim": _shape(layout, f"{base}heads.audio.2.weight")[0],
        "patch_size": _shape(layout, f"{base}preprocessors.audio.rgbt_stem.proj.weight")[-1],
    }
