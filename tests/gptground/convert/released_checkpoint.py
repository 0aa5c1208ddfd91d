"""A tiny checkpoint in the released GroundingGPT-7B layout, written key by key.

The names and nesting are those of ``LEGOLlamaForCausalLM`` (``lego/LEGO.py``), written here
from that module tree, not from the converter's tables:

- ``model.*`` / ``lm_head.weight``: transformers' LlamaForCausalLM (LEGO subclasses it);
- ``model.mm_vision_projector.{0,2}``: Sequential(Linear, GELU, Linear);
- ``model.visual_encoder.*``: LAVIS ``eva_vit`` (cls_token, pos_embed, patch_embed.proj,
  blocks.N.{norm1, attn.{qkv, q_bias, v_bias, proj}, norm2, mlp.{fc1, fc2}}), ``model.ln_vision``;
- ``model.Qformer`` / ``video_Qformer`` / ``audio_Qformer``: LAVIS ``BertLMHeadModel`` after
  LEGO.py removed ``cls``, the word/position embeddings and each layer's ``intermediate`` and
  ``output``: ``bert.embeddings.{LayerNorm, position_ids}``, ``bert.encoder.layer.N.
  {attention, crossattention}.{self.{query,key,value}, output.{dense,LayerNorm}}``,
  ``intermediate_query.dense``, ``output_query.{dense,LayerNorm}``; cross-attention every
  ``cross_attention_freq`` layers (2 for BLIP-2's, 1 for LEGO's own);
- ``model.audio_encoder.*``: the whole ImageBind model: its audio branch (built with ImageBind's
  own classes, so ImageBind's names) and a few keys of each other modality;
- query tokens, ``video_frame_position_embedding``, ``llama_proj``, ``audio_position_embedding``,
  ``audio_llama_proj``.

Sizes are tiny; head counts follow the published widths (BERT heads of 64, EVA heads of 88,
ImageBind heads of 64), so the converter can only infer them the way it must for the release.
Tensors are stored in fp16 as ``pytorch_model-0000k-of-0000n.bin`` shards + index.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import AddedToken
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/gptground: llama_like
from llama_like import llama_like_tokenizer  # noqa: E402

from modalities.imagebind_audio import AudioEncoderDims, ImageBindAudioEncoder  # noqa: E402

RELEASED_TOKENS = ("<im_patch>", "<im_start>", "<im_end>", "<vi_patch>", "<vi_start>", "<vi_end>",
                   "<so_patch>", "<so_start>", "<so_end>")  # lego/model/builder.py, in its order


@dataclass(frozen=True)
class Sizes:
    d_model: int = 64  # LLaMA hidden
    layers: int = 2
    heads: int = 4
    clip_width: int = 32
    clip_image: int = 56  # 4 x 4 patches of 14 -> 16 image tokens
    eva_width: int = 176  # 2 heads of 88
    eva_depth: int = 2
    eva_mlp: int = 64
    eva_image: int = 28  # 2 x 2 patches of 14 + CLS = 5 tokens
    bert: int = 128  # every Q-Former's width: 2 heads of 64
    bert_ffn: int = 96
    frame_layers: int = 2  # BLIP-2 Q-Former layers (cross-attention in layer 0 only)
    frame_queries: int = 4  # num_query_token
    max_frame: int = 4
    video_tokens: int = 6
    audio_width: int = 128  # ImageBind audio trunk: 2 heads of 64
    audio_out: int = 96  # ImageBind's embedding width (1024 in the release)
    sound_tokens: int = 8  # audio queries and audio_position_embedding rows


@dataclass
class ReleasedCheckpoint:
    folder: str
    clip_folder: str
    sizes: Sizes
    state: dict[str, torch.Tensor]  # every key as written (fp16)
    token_rows: dict[str, int] = field(default_factory=dict)  # token -> the row trained for it


def _lin(state, prefix, out, inp, gen, bias=True, scale=None):
    state[f"{prefix}.weight"] = torch.randn(out, inp, generator=gen) * (scale or inp**-0.5)
    if bias:
        state[f"{prefix}.bias"] = torch.randn(out, generator=gen) * 0.1


def _norm(state, prefix, width, gen):
    state[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(width, generator=gen)
    state[f"{prefix}.bias"] = 0.1 * torch.randn(width, generator=gen)


def _lavis_qformer(state, prefix, s: Sizes, layers, encoder_width, cross_freq, gen):
    """LAVIS BertLMHeadModel keys left after LEGO.py's removals."""
    _norm(state, f"{prefix}.bert.embeddings.LayerNorm", s.bert, gen)
    state[f"{prefix}.bert.embeddings.position_ids"] = torch.arange(512).expand(1, -1).clone()
    for i in range(layers):
        layer = f"{prefix}.bert.encoder.layer.{i}"
        blocks = ["attention"] + (["crossattention"] if i % cross_freq == 0 else [])
        for block in blocks:
            width = encoder_width if block == "crossattention" else s.bert
            _lin(state, f"{layer}.{block}.self.query", s.bert, s.bert, gen)
            _lin(state, f"{layer}.{block}.self.key", s.bert, width, gen)
            _lin(state, f"{layer}.{block}.self.value", s.bert, width, gen)
            _lin(state, f"{layer}.{block}.output.dense", s.bert, s.bert, gen)
            _norm(state, f"{layer}.{block}.output.LayerNorm", s.bert, gen)
        _lin(state, f"{layer}.intermediate_query.dense", s.bert_ffn, s.bert, gen)
        _lin(state, f"{layer}.output_query.dense", s.bert, s.bert_ffn, gen)
        _norm(state, f"{layer}.output_query.LayerNorm", s.bert, gen)


def _eva(state, prefix, s: Sizes, gen):
    w = s.eva_width
    state[f"{prefix}.cls_token"] = torch.randn(1, 1, w, generator=gen) * 0.5
    state[f"{prefix}.pos_embed"] = torch.randn(1, 1 + (s.eva_image // 14) ** 2, w, generator=gen) * 0.5
    state[f"{prefix}.patch_embed.proj.weight"] = torch.randn(w, 3, 14, 14, generator=gen) * (3 * 14 * 14) ** -0.5
    state[f"{prefix}.patch_embed.proj.bias"] = torch.randn(w, generator=gen) * 0.1
    for i in range(s.eva_depth):
        block = f"{prefix}.blocks.{i}"
        _norm(state, f"{block}.norm1", w, gen)
        _lin(state, f"{block}.attn.qkv", 3 * w, w, gen, bias=False)
        state[f"{block}.attn.q_bias"] = torch.randn(w, generator=gen) * 0.1
        state[f"{block}.attn.v_bias"] = torch.randn(w, generator=gen) * 0.1
        _lin(state, f"{block}.attn.proj", w, w, gen)
        _norm(state, f"{block}.norm2", w, gen)
        _lin(state, f"{block}.mlp.fc1", s.eva_mlp, w, gen)
        _lin(state, f"{block}.mlp.fc2", w, s.eva_mlp, gen)


def _imagebind(state, prefix, s: Sizes, gen):
    """The audio branch with ImageBind's own module names, plus keys of the other five."""
    audio = ImageBindAudioEncoder(AudioEncoderDims(embed_dim=s.audio_width, num_blocks=1, num_heads=2, out_dim=s.audio_out))
    for k, v in audio.state_dict().items():
        noisy = v + 0.2 * torch.randn(v.shape, generator=gen) if v.is_floating_point() and v.dim() else v
        state[f"{prefix}.{k}"] = noisy.clone()
    for modality in ("vision", "text", "depth", "thermal", "imu"):
        state[f"{prefix}.modality_trunks.{modality}.blocks.0.attn.in_proj_weight"] = torch.randn(24, 8, generator=gen)
        state[f"{prefix}.modality_heads.{modality}.proj.weight"] = torch.randn(4, 8, generator=gen)
        state[f"{prefix}.modality_postprocessors.{modality}.1.log_logit_scale"] = torch.tensor(2.0)
    state[f"{prefix}.modality_preprocessors.vision.rgbt_stem.proj.1.weight"] = torch.randn(8, 3, 2, 2, 2, generator=gen)
    state[f"{prefix}.modality_preprocessors.text.token_embedding.weight"] = torch.randn(10, 8, generator=gen)


def write_released_checkpoint(folder: str | os.PathLike, tokens_in_tokenizer: bool = False, shards: int = 3,
                              seed: int = 0, sizes: Sizes = Sizes()) -> ReleasedCheckpoint:
    """Write the tiny release into ``folder`` (and its CLIP tower into ``folder``/../clip)."""
    s = sizes
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    clip_folder = os.path.join(os.path.dirname(folder), "clip-tiny")
    torch.manual_seed(seed)
    CLIPVisionModel(CLIPVisionConfig(image_size=s.clip_image, patch_size=14, hidden_size=s.clip_width,
                                     intermediate_size=2 * s.clip_width, num_hidden_layers=3,
                                     num_attention_heads=2)).save_pretrained(clip_folder)

    tokenizer = llama_like_tokenizer()
    base = len(tokenizer)
    if tokens_in_tokenizer:  # a folder saved after the tokens were added, as a trainer saves it
        tokenizer = type(tokenizer).from_pretrained(_save(tokenizer, folder))
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in RELEASED_TOKENS], special_tokens=True)
    _save(tokenizer, folder)
    vocab = base + len(RELEASED_TOKENS)

    llama = LlamaConfig(hidden_size=s.d_model, intermediate_size=2 * s.d_model, num_hidden_layers=s.layers,
                        num_attention_heads=s.heads, num_key_value_heads=s.heads, vocab_size=vocab,
                        max_position_embeddings=1024, rms_norm_eps=1e-6)
    decoder = LlamaForCausalLM(llama)
    state = {k: v + 0.02 * torch.randn(v.shape, generator=gen) for k, v in decoder.state_dict().items()}
    state["lm_head.weight"] = torch.randn(vocab, s.d_model, generator=gen)
    state["model.embed_tokens.weight"] = torch.randn(vocab, s.d_model, generator=gen)
    for i in range(s.layers):  # transformers < 4.31 saved this buffer; the release may hold it
        state[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = 1.0 / 10000 ** (torch.arange(0, 16, 2) / 16)
    _lin(state, "model.mm_vision_projector.0", s.d_model, s.clip_width, gen)
    _lin(state, "model.mm_vision_projector.2", s.d_model, s.d_model, gen)
    _eva(state, "model.visual_encoder", s, gen)
    _norm(state, "model.ln_vision", s.eva_width, gen)
    _lavis_qformer(state, "model.Qformer", s, s.frame_layers, s.eva_width, 2, gen)
    state["model.query_tokens"] = torch.randn(1, s.frame_queries, s.bert, generator=gen)
    _lin(state, "model.llama_proj", s.d_model, s.bert, gen)
    state["model.video_frame_position_embedding.weight"] = torch.randn(s.max_frame, s.bert, generator=gen)
    _lavis_qformer(state, "model.video_Qformer", s, 2, s.bert, 1, gen)
    state["model.video_query_tokens"] = torch.randn(1, s.video_tokens, s.bert, generator=gen)
    _imagebind(state, "model.audio_encoder", s, gen)
    _lavis_qformer(state, "model.audio_Qformer", s, 2, s.audio_out, 1, gen)
    state["model.audio_query_tokens"] = torch.randn(1, s.sound_tokens, s.bert, generator=gen)
    _lin(state, "model.audio_llama_proj", s.d_model, s.bert, gen)
    state["model.audio_position_embedding.weight"] = torch.randn(s.sound_tokens, s.audio_out, generator=gen)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}

    _write_shards(state, folder, shards)
    config = {
        **llama.to_dict(), "architectures": ["LEGOLlamaForCausalLM"], "model_type": "LEGO",
        "rope_theta": 10000.0, "torch_dtype": "float16",
        "mm_vision_tower": clip_folder, "mm_vision_hidden_size": s.clip_width, "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch", "mm_use_im_start_end": True, "use_mm_vision_proj": True,
        "image_token_len": (s.clip_image // 14) ** 2, "num_query_token": s.frame_queries, "max_frame": s.max_frame,
        "video_token_len": s.video_tokens, "sound_token_len": s.sound_tokens,
    }
    config.pop("rope_parameters", None)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    rows = {t: base + i for i, t in enumerate(RELEASED_TOKENS)}
    return ReleasedCheckpoint(folder, clip_folder, s, state, rows)


def _save(tokenizer, folder: str) -> str:
    tokenizer.save_pretrained(folder)
    return folder


def _write_shards(state: dict[str, torch.Tensor], folder: str, shards: int) -> None:
    keys = list(state)
    per = -(-len(keys) // shards)
    weight_map = {}
    for i in range(shards):
        name = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        part = {k: state[k] for k in keys[i * per:(i + 1) * per]}
        torch.save(part, os.path.join(folder, name))
        weight_map.update({k: name for k in part})
    with open(os.path.join(folder, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1)


def rewrite(ckpt: ReleasedCheckpoint, state: dict[str, torch.Tensor], shards: int = 3) -> None:
    """Replace the checkpoint's weights (old shards removed) with ``state``."""
    for name in os.listdir(ckpt.folder):
        if name.startswith("pytorch_model"):
            os.remove(os.path.join(ckpt.folder, name))
    _write_shards(state, ckpt.folder, shards)


def reference_decoder(ckpt: ReleasedCheckpoint) -> LlamaForCausalLM:
    """transformers' own LlamaForCausalLM with the release's decoder weights (fp32)."""
    with open(os.path.join(ckpt.folder, "config.json")) as f:
        raw = json.load(f)
    s = ckpt.sizes
    config = LlamaConfig(hidden_size=s.d_model, intermediate_size=2 * s.d_model, num_hidden_layers=s.layers,
                         num_attention_heads=s.heads, num_key_value_heads=s.heads, vocab_size=raw["vocab_size"],
                         max_position_embeddings=raw["max_position_embeddings"], rms_norm_eps=raw["rms_norm_eps"])
    decoder = LlamaForCausalLM(config)
    state = {k: v.float() for k, v in ckpt.state.items()
             if k == "lm_head.weight" or k.startswith(("model.embed_tokens.", "model.norm.", "model.layers."))
             and not k.endswith("inv_freq")}
    decoder.load_state_dict(state, strict=True)
    return decoder.eval()
