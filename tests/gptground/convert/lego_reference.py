"""GroundingGPT's forward written out from the published equations, on a released state dict.

Independent of GPTGround's modules: plain tensor maths on the checkpoint's own keys
(``lego/LEGO.py``: ``forward`` (images), ``encode_videoQformer_visual``,
``encode_audioQformer``; LAVIS's BERT Q-Former and eva_vit; ImageBind's audio branch).
Only the CLIP image tower runs as transformers' CLIPVisionModel, as it does in LEGO.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers import CLIPVisionModel

BERT_EPS = 1e-12  # bert-base-uncased layer_norm_eps (every Q-Former LayerNorm)
BERT_HEAD = 64  # bert-base: 12 heads of 64
EVA_EPS, EVA_HEAD = 1e-6, 88  # LAVIS eva_vit: LayerNorm eps, head width
LN_VISION_EPS = 1e-5  # LAVIS ln_vision: torch's default
IB_HEAD = 64  # ImageBind-huge audio: 12 heads of 64


def _w(st, p):
    return st[p].float()


def linear(x, st, p, bias=True):
    y = x @ _w(st, f"{p}.weight").T
    return y + _w(st, f"{p}.bias") if bias else y


def layer_norm(x, st, p, eps):
    return F.layer_norm(x, (x.shape[-1],), _w(st, f"{p}.weight"), _w(st, f"{p}.bias"), eps)


def attention(q, k, v, head_width):
    """softmax(q k^T / sqrt(d)) v over heads of ``head_width``: (B, L, C) -> (B, L, C)."""
    B, Lq, C = q.shape
    h = C // head_width
    split = lambda t: t.view(B, t.shape[1], h, head_width).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_width), dim=-1)
    return (weights @ v).transpose(1, 2).reshape(B, Lq, C)


def bert_attention(x, context, st, p):
    """LAVIS BertAttention: self/cross attention, then dense + residual + LayerNorm."""
    q, k, v = (linear(t, st, f"{p}.self.{n}") for t, n in ((x, "query"), (context, "key"), (context, "value")))
    out = linear(attention(q, k, v, BERT_HEAD), st, f"{p}.output.dense")
    return layer_norm(out + x, st, f"{p}.output.LayerNorm", BERT_EPS)


def qformer(st, p, queries, features):
    """LAVIS BertModel run on query embeddings only (LEGO.py's ``Qformer.bert(query_embeds=...)``)."""
    x = layer_norm(queries.float(), st, f"{p}.bert.embeddings.LayerNorm", BERT_EPS)  # no word/position embeddings
    i = 0
    while f"{p}.bert.encoder.layer.{i}.attention.self.query.weight" in st:
        layer = f"{p}.bert.encoder.layer.{i}"
        x = bert_attention(x, x, st, f"{layer}.attention")
        if f"{layer}.crossattention.self.query.weight" in st:
            x = bert_attention(x, features, st, f"{layer}.crossattention")
        hidden = F.gelu(linear(x, st, f"{layer}.intermediate_query.dense"))
        x = layer_norm(linear(hidden, st, f"{layer}.output_query.dense") + x, st, f"{layer}.output_query.LayerNorm", BERT_EPS)
        i += 1
    return x


def eva_vit(st, p, pixels):
    """LAVIS eva_vit: patches + CLS + positions, pre-norm blocks with q/v biases, no final norm."""
    w = _w(st, f"{p}.patch_embed.proj.weight")
    x = F.conv2d(pixels, w, _w(st, f"{p}.patch_embed.proj.bias"), stride=w.shape[-1]).flatten(2).transpose(1, 2)
    x = torch.cat([_w(st, f"{p}.cls_token").expand(len(x), -1, -1), x], dim=1) + _w(st, f"{p}.pos_embed")
    i = 0
    while f"{p}.blocks.{i}.norm1.weight" in st:
        b = f"{p}.blocks.{i}"
        y = layer_norm(x, st, f"{b}.norm1", EVA_EPS)
        bias = torch.cat([_w(st, f"{b}.attn.q_bias"), torch.zeros_like(_w(st, f"{b}.attn.q_bias")), _w(st, f"{b}.attn.v_bias")])
        q, k, v = (y @ _w(st, f"{b}.attn.qkv.weight").T + bias).chunk(3, dim=-1)
        x = x + linear(attention(q, k, v, EVA_HEAD), st, f"{b}.attn.proj")
        x = x + linear(F.gelu(linear(layer_norm(x, st, f"{b}.norm2", EVA_EPS), st, f"{b}.mlp.fc1")), st, f"{b}.mlp.fc2")
        i += 1
    return x


def imagebind_audio(st, p, fbanks):
    """ImageBind's audio embedding of each (1, mel, frames) clip: (N, 1, M, T) -> (N, out)."""
    pre, trunk, head = (f"{p}.modality_{n}.audio" for n in ("preprocessors", "trunks", "heads"))
    x = F.conv2d(fbanks, _w(st, f"{pre}.rgbt_stem.proj.weight"), stride=10).flatten(2).transpose(1, 2)
    x = layer_norm(x, st, f"{pre}.rgbt_stem.norm_layer", 1e-5)
    x = torch.cat([_w(st, f"{pre}.cls_token").expand(len(x), -1, -1), x], dim=1) + _w(st, f"{pre}.pos_embedding_helper.pos_embed")
    i = 0
    while f"{trunk}.blocks.{i}.norm_1.weight" in st:
        b = f"{trunk}.blocks.{i}"
        y = layer_norm(x, st, f"{b}.norm_1", 1e-6)
        q, k, v = (y @ _w(st, f"{b}.attn.in_proj_weight").T + _w(st, f"{b}.attn.in_proj_bias")).chunk(3, dim=-1)
        # add_bias_kv: one learned key and value appended to every sequence
        k = torch.cat([k, _w(st, f"{b}.attn.bias_k").expand(len(x), 1, -1)], dim=1)
        v = torch.cat([v, _w(st, f"{b}.attn.bias_v").expand(len(x), 1, -1)], dim=1)
        x = x + linear(attention(q, k, v, IB_HEAD), st, f"{b}.attn.out_proj")
        x = x + linear(F.gelu(linear(layer_norm(x, st, f"{b}.norm_2", 1e-6), st, f"{b}.mlp.fc1")), st, f"{b}.mlp.fc2")
        i += 1
    cls = layer_norm(x, st, f"{head}.0", 1e-6)[:, 0]
    embedding = cls @ _w(st, f"{head}.2.weight").T
    scale = _w(st, f"{p}.modality_postprocessors.audio.1.log_logit_scale").exp().clamp(max=100)
    return F.normalize(embedding, dim=-1) * scale


# --- the three branches of LEGO.py ---------------------------------------------------------------
def image_tokens(st, clip_folder, pixels, select_layer=-2):
    """CLIP hidden state ``select_layer`` without CLS -> mm_vision_projector (Linear, GELU, Linear)."""
    clip = CLIPVisionModel.from_pretrained(clip_folder).eval()
    with torch.no_grad():
        features = clip(pixels, output_hidden_states=True).hidden_states[select_layer][:, 1:]
    return linear(F.gelu(linear(features, st, "model.mm_vision_projector.0")), st, "model.mm_vision_projector.2")


def video_tokens(st, frames):
    """(B, F, 3, S, S) frames -> (B, video_token_len, d): LEGO.py's encode_videoQformer_visual."""
    B, T = frames.shape[:2]
    image_embeds = layer_norm(eva_vit(st, "model.visual_encoder", frames.flatten(0, 1)), st, "model.ln_vision", LN_VISION_EPS)
    q = qformer(st, "model.Qformer", _w(st, "model.query_tokens").expand(B * T, -1, -1), image_embeds)
    q = q.view(B, T, q.shape[1], q.shape[2]) + _w(st, "model.video_frame_position_embedding.weight")[:T, None, :]
    video = qformer(st, "model.video_Qformer", _w(st, "model.video_query_tokens").expand(B, -1, -1), q.flatten(1, 2))
    return linear(video, st, "model.llama_proj")


def audio_tokens(st, fbanks):
    """(B, W, 1, M, T) clips -> (B, sound_token_len, d): LEGO.py's encode_audioQformer."""
    B, W = fbanks.shape[:2]
    clips = imagebind_audio(st, "model.audio_encoder", fbanks.flatten(0, 1)).view(B, W, -1)
    clips = clips + _w(st, "model.audio_position_embedding.weight")[:W]
    out = qformer(st, "model.audio_Qformer", _w(st, "model.audio_query_tokens").expand(B, -1, -1), clips)
    return linear(out, st, "model.audio_llama_proj")
