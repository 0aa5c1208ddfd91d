"""``gptground convert groundinggpt``: the released GroundingGPT-7B as a GPTGround model folder.

Steps, each failing before anything is written:

1. read config.json (``model_type: LEGO``) and the layout (keys, shapes) of every shard;
2. map every key (``lego_layout.RENAMES``) or drop it (``lego_layout.DROPPED``); an unknown
   key stops the conversion;
3. load the tokenizer with the nine media tokens at the released ids (``tokens``);
   The folder records ``model.preprocess: groundinggpt``: the inputs the release was trained on.
4. build the GroundingModel the checkpoint implies, its weights uninitialised in the target
   dtype (the CLIP image tower is read from ``config.mm_vision_tower``: it is not in the
   release); every target weight must have exactly one source key of its shape;
5. copy the weights shard by shard, then write the folder (atomically, ``save_model_folder``)
   with its config: encoders, template ``groundinggpt_release``, grounding format
   ``groundinggpt``.

Memory: the converted weights are allocated once, in the target dtype (``materialize``: empty
storage, no random init). Each shard is memory-mapped (``torch.load(mmap=True)``): its tensors
are file pages read on access, and each is copied (and cast) straight into its destination;
the shard is released before the next is opened. So the peak is the converted weights plus
at most one shard's pages (plus the fp32 CLIP tower, 1.2 GB for ViT-L/14-336, before it is
cast). The folder is then written tensor by tensor from the model's own storage.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlamaForCausalLM

from gptground.config import DecoderConfig, ModelConfig
from gptground.convert.errors import ConversionError
from gptground.convert.lego_layout import (
    LegoConfig,
    QFormerShape,
    audio_encoder_dims,
    eva_shape_record,
    plan_keys,
    qformer_shape,
    read_lego_config,
)
from gptground.convert.shards import TensorInfo, iter_tensors, read_layout, shard_files
from gptground.convert.tokens import released_tokenizer
from gptground.model.folder import save_model_folder
from gptground.model.grounding_model import GroundingModel
from gptground.model.meta import materialize, parameters_on_meta
from gptground.processor import modality_token_ids
from modalities.audio import AudioConfig, AudioModality
from modalities.checkpoints import hub_offline, resolve_pretrained
from modalities.image import ImageConfig, ImageModality
from modalities.preprocess import GROUNDINGGPT
from modalities.qformer import QFormerConfig
from modalities.video import EVA_VIT_G, VideoConfig, VideoModality

RELEASE_TEMPLATE = "groundinggpt_release"  # the released training text (gptground.conversation)
RELEASE_FORMAT = "groundinggpt"  # [x1, y1, x2, y2] boxes and {t1,t2} spans, 3 decimals
LAVIS_LAYERNORM_EPS = 1e-5  # ln_vision is LAVIS's LayerNorm(1408) with torch's default eps
# Config keys of the release that are LEGO's, or bookkeeping: not part of the decoder's config.
_NOT_DECODER = {"model_type", "architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path"}
# Legacy LlamaConfig arguments that transformers 5 still accepts (folded into rope_parameters).
_LEGACY_LLAMA = {"rope_theta", "rope_scaling"}
_IMAGE_TOWER = "modalities.image.encoder."  # filled from the CLIP folder, not from the release


def convert_groundinggpt(
    source: str,
    out: str,
    dtype: torch.dtype = torch.bfloat16,
    image_encoder: str | None = None,
    overwrite: bool = False,
) -> str:
    """Convert the release at ``source`` (folder or hub id) into a model folder at ``out``.

    Args:
        dtype: dtype of the converted weights.
        image_encoder: the CLIP tower (folder or hub id); default: the release's
            ``config.mm_vision_tower``.
        overwrite: replace an existing ``out``.

    Returns:
        The absolute path of the written folder.

    Raises:
        ConversionError: the checkpoint is not in the released layout (names the keys).
        CheckpointNotFoundError: ``source`` or the CLIP tower cannot be found.
    """
    if os.path.exists(out) and not overwrite:
        raise ConversionError(f"{out} exists; choose another --out or pass --overwrite")
    folder = _resolve(source)
    lego = read_lego_config(folder)
    files = shard_files(folder)
    layout = read_layout(folder, files)
    plan = plan_keys(layout)
    tokenizer = released_tokenizer(folder, _embedding_rows(layout))
    config = converted_config(lego, layout, image_encoder or lego.mm_vision_tower, source)
    decoder, modalities = _build_target(config, lego, layout, dtype)
    destinations = {
        f"{prefix}.{k}": v
        for prefix, part in (("decoder", decoder), *((f"modalities.{n}", m) for n, m in modalities.items()))
        for k, v in part.state_dict(keep_vars=True).items()
    }
    check_fit(plan, layout, destinations)
    copy_weights(files, plan, destinations)
    ids = modality_token_ids(tokenizer, modalities)
    model = GroundingModel(
        decoder, modalities, {n: t.patch for n, t in ids.items()}, [i for t in ids.values() for i in (t.start, t.patch, t.end)]
    )
    return save_model_folder(model, tokenizer, config, out, template=RELEASE_TEMPLATE, grounding_format=RELEASE_FORMAT)


def _resolve(source: str) -> str:
    """A local folder for ``source``: itself, or the hub snapshot (downloaded when online)."""
    path = resolve_pretrained(source, "SRC")
    if os.path.isdir(path):
        return path
    from huggingface_hub import snapshot_download

    return snapshot_download(source, local_files_only=hub_offline())


def _embedding_rows(layout: Mapping[str, TensorInfo]) -> int:
    rows = {k: layout[k].shape[0] for k in ("model.embed_tokens.weight", "lm_head.weight") if k in layout}
    if len(set(rows.values())) > 1:
        raise ConversionError(f"embed_tokens and lm_head have different row counts: {rows}")
    if not rows:
        raise ConversionError("the checkpoint has neither model.embed_tokens.weight nor lm_head.weight")
    return next(iter(rows.values()))


# --- the model section of the converted folder ----------------------------------------------
def converted_config(lego: LegoConfig, layout: Mapping[str, TensorInfo], image_encoder: str, source: str) -> ModelConfig:
    """The model section the release implies: its encoders, shapes and token counts."""
    video_qformer = qformer_shape(layout, "video_Qformer", "video_query_tokens")
    audio_qformer = qformer_shape(layout, "audio_Qformer", "audio_query_tokens")
    for name, shape, expected in (("video", video_qformer, lego.video_token_len), ("audio", audio_qformer, lego.sound_token_len)):
        if shape.num_queries != expected:
            raise ConversionError(
                f"model.{name}_query_tokens has {shape.num_queries} queries, config.json says "
                f"{'video' if name == 'video' else 'sound'}_token_len={expected}"
            )
    clip = CLIPVisionConfig.from_pretrained(resolve_pretrained(image_encoder, "--image-encoder"), local_files_only=hub_offline())
    image = ImageConfig(
        encoder=image_encoder, image_size=clip.image_size, feature_layer=lego.mm_vision_select_layer,
        preprocess=GROUNDINGGPT,
    )
    video = VideoConfig(
        num_frames=lego.max_frame,
        image_size=eva_shape_record(layout)["image_size"],
        frame_encoder_type=EVA_VIT_G,
        frame_encoder="eva_vit_g.pth",  # what LAVIS's BLIP-2 loads; the folder holds the weights
        frame_qformer="blip2_pretrained_flant5xxl.pth",
        num_queries=video_qformer.num_queries,
        adapter_num_layers=video_qformer.num_layers,
        adapter_hidden_size=video_qformer.hidden_size,
        adapter_num_heads=video_qformer.num_heads,
        adapter_intermediate_size=video_qformer.intermediate_size,
        preprocess=GROUNDINGGPT,
    )
    audio = AudioConfig(
        encoder="imagebind_huge.pth",  # the folder holds its audio branch
        max_windows=layout["model.audio_position_embedding.weight"].shape[0],
        num_queries=audio_qformer.num_queries,
        qformer_layers=audio_qformer.num_layers,
        qformer_hidden_size=audio_qformer.hidden_size,
        qformer_heads=audio_qformer.num_heads,
        qformer_intermediate_size=audio_qformer.intermediate_size,
        preprocess=GROUNDINGGPT,
    )
    return ModelConfig(
        decoder=DecoderConfig(path=source),
        tokenizer=source,
        modalities={"image": image, "video": video, "audio": audio},
        preprocess=GROUNDINGGPT,  # the released model's input pipeline (modalities/preprocess.py)
    )


def decoder_config(lego: LegoConfig) -> LlamaConfig:
    """The LLaMA part of the release's config.json."""
    known = set(LlamaConfig().to_dict()) | _LEGACY_LLAMA
    config = LlamaConfig(**{k: v for k, v in lego.raw.items() if k in known and k not in _NOT_DECODER})
    config.architectures = ["LlamaForCausalLM"]
    return config


def _frame_qformer_record(shape: QFormerShape) -> dict:
    config = QFormerConfig(
        num_layers=shape.num_layers, hidden_size=shape.hidden_size, num_heads=shape.num_heads,
        intermediate_size=shape.intermediate_size, num_queries=shape.num_queries,
        encoder_hidden_size=shape.encoder_hidden_size, max_positions=0,
        cross_attention_frequency=shape.cross_attention_frequency,
    )
    return {"config": dataclasses.asdict(config), "norm_eps": LAVIS_LAYERNORM_EPS}


def _build_target(config: ModelConfig, lego: LegoConfig, layout, dtype: torch.dtype):
    """The decoder and modalities, weights uninitialised in ``dtype`` (image tower: from CLIP)."""
    d_model = int(lego.raw["hidden_size"])
    llama = decoder_config(lego)
    llama._attn_implementation = "sdpa"
    video_record = {
        "frame_encoder_type": EVA_VIT_G,
        "frame_encoder": eva_shape_record(layout),
        "frame_qformer": _frame_qformer_record(qformer_shape(layout, "Qformer", "query_tokens")),
    }
    with parameters_on_meta():
        decoder = LlamaForCausalLM(llama)
        video = VideoModality(config.modalities["video"], d_model, architecture=video_record)
        audio = AudioModality(config.modalities["audio"], d_model, architecture={"encoder": audio_encoder_dims(layout)})
    for module in (decoder, video, audio):
        materialize(module, dtype)
    image = ImageModality(config.modalities["image"], d_model).to(dtype)  # reads the CLIP tower
    return decoder, {"image": image, "video": video, "audio": audio}


# --- weights ----------------------------------------------------------------------------------
def check_fit(plan: Mapping[str, str], layout: Mapping[str, TensorInfo], destinations: Mapping[str, torch.Tensor]) -> None:
    """Every target weight (but the CLIP tower's) has one source key of its shape, and back.

    Raises:
        ConversionError: naming missing targets, sources without a target, shape misfits.
    """
    filled = set(plan.values())
    missing = sorted(t for t in destinations if not t.startswith(_IMAGE_TOWER) and t not in filled)
    no_target = sorted(s for s, t in plan.items() if t not in destinations)
    misfit = [
        f"{s} {layout[s].shape} -> {t} {tuple(destinations[t].shape)}"
        for s, t in sorted(plan.items())
        if t in destinations and tuple(destinations[t].shape) != layout[s].shape
    ]
    problems = [
        f"{len(keys)} {what}: {keys[:8]}"
        for what, keys in (
            ("weights of the model that the checkpoint lacks", missing),
            ("checkpoint keys this model has no place for", no_target),
            ("shape misfits (checkpoint -> model)", misfit),
        )
        if keys
    ]
    if problems:
        raise ConversionError("the checkpoint does not fit the model it describes: " + "; ".join(problems))


@torch.no_grad()
def copy_weights(files: list[str], plan: Mapping[str, str], destinations: Mapping[str, torch.Tensor]) -> None:
    """Copy (and cast) every mapped tensor into its destination, one shard at a time."""
    for path in files:
        for key, tensor in iter_tensors(path):
            target = plan.get(key)
            if target is not None:
                destinations[target].detach().copy_(tensor)
