"""An independent EVA ViT forward, written from the published equations, for parity tests.

EVA / BEiT ViT (Fang et al. 2023, "EVA"; BLIP-2 uses it without its last block), per image:

    tokens  = [cls ; P W_patch^T + b_patch] + pos           P: the p x p patches, row-major
    per block:
        h   = LN1(x)
        q   = h Wq^T + bq,  k = h Wk^T,  v = h Wv^T + bv     (Wq | Wk | Wv = rows of qkv.weight)
        a   = softmax(q_h k_h^T / sqrt(d_head)) v_h          per head h
        x   = x + a Wo^T + bo
        x   = x + GELU(LN2(x) W1^T + b1) W2^T + b2          GELU(z) = z/2 (1 + erf(z / sqrt 2))
    LN(z) = (z - mean) / sqrt(var + eps) * gamma + beta     (biased variance over channels)

Patches are cut with ``unfold`` and multiplied by the flattened kernel, attention and
normalisation are spelled out, and everything runs in float64: nothing shares code with
``modalities.eva_vit``. Input: a state dict in LAVIS's ``eva_vit`` names (all its blocks are
run) and pixels (N, 3, S, S); output (N, 1 + (S / p)^2, width), e.g. (N, 257, 1408) for ViT-g.
"""

from __future__ import annotations

import math
import re

import torch


def layer_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma.double() + beta.double()


def gelu(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0)))


def reference_eva(state: dict[str, torch.Tensor], pixels: torch.Tensor, num_heads: int, eps: float = 1e-6) -> torch.Tensor:
    """EVA ViT features of ``pixels`` with the weights ``state`` (LAVIS names), in float64."""
    s = {k: v.double() for k, v in state.items()}
    kernel = s["patch_embed.proj.weight"]  # (C, 3, p, p)
    width, p = kernel.shape[0], kernel.shape[-1]
    patches = torch.nn.functional.unfold(pixels.double(), kernel_size=p, stride=p).transpose(1, 2)  # (N, L, 3 p p)
    x = patches @ kernel.reshape(width, -1).T + s["patch_embed.proj.bias"]  # (N, L, C)
    x = torch.cat([s["cls_token"].expand(x.shape[0], 1, width), x], dim=1) + s["pos_embed"]
    depth = 1 + max(int(m.group(1)) for k in s if (m := re.match(r"blocks\.(\d+)\.", k)))
    head = width // num_heads
    for i in range(depth):
        b = f"blocks.{i}."
        h = layer_norm(x, s[b + "norm1.weight"], s[b + "norm1.bias"], eps)
        wq, wk, wv = s[b + "attn.qkv.weight"].split(width)
        q = h @ wq.T + s[b + "attn.q_bias"]
        k = h @ wk.T  # EVA has no key bias
        v = h @ wv.T + s[b + "attn.v_bias"]
        N, T, _ = x.shape
        q, k, v = (t.reshape(N, T, num_heads, head).transpose(1, 2) for t in (q, k, v))  # (N, heads, T, d)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head), dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(N, T, width)
        x = x + attended @ s[b + "attn.proj.weight"].T + s[b + "attn.proj.bias"]
        h = layer_norm(x, s[b + "norm2.weight"], s[b + "norm2.bias"], eps)
        x = x + gelu(h @ s[b + "mlp.fc1.weight"].T + s[b + "mlp.fc1.bias"]) @ s[b + "mlp.fc2.weight"].T + s[b + "mlp.fc2.bias"]
    return x


# --- the same weights in the layouts users have them ---------------------------------------------
def lavis_eva_state(hf_vision: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers ``Blip2VisionModel`` state dict in LAVIS's ``eva_vit`` names.

    ``post_layernorm`` (ln_vision) is not part of LAVIS's tower and is left out; the fused
    ``qkv.bias`` gives ``q_bias`` and ``v_bias`` (LAVIS has no key bias).
    """
    out = {}
    for name, t in hf_vision.items():
        if name.startswith("post_layernorm."):
            continue
        if m := re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.qkv\.bias", name):
            q, _, v = t.chunk(3)
            out[f"blocks.{m.group(1)}.attn.q_bias"], out[f"blocks.{m.group(1)}.attn.v_bias"] = q.clone(), v.clone()
            continue
        for pattern, repl in (
            (r"embeddings\.class_embedding", "cls_token"),
            (r"embeddings\.position_embedding", "pos_embed"),
            (r"embeddings\.patch_embedding\.(\w+)", r"patch_embed.proj.\1"),
            (r"encoder\.layers\.(\d+)\.layer_norm(\d)\.(\w+)", r"blocks.\1.norm\2.\3"),
            (r"encoder\.layers\.(\d+)\.self_attn\.qkv\.weight", r"blocks.\1.attn.qkv.weight"),
            (r"encoder\.layers\.(\d+)\.self_attn\.projection\.(\w+)", r"blocks.\1.attn.proj.\2"),
            (r"encoder\.layers\.(\d+)\.mlp\.(fc\d)\.(\w+)", r"blocks.\1.mlp.\2.\3"),
        ):
            if re.fullmatch(pattern, name):
                out[re.sub(pattern, repl, name)] = t.clone()
                break
        else:
            raise KeyError(f"no LAVIS name for {name}")
    return out


def lavis_blip2_state(hf_blip2: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Q-Former half of a transformers BLIP-2 state dict in LAVIS's ``Blip2Qformer`` names
    (``ln_vision``, ``query_tokens``, ``Qformer.bert.*``), as ``blip2_pretrained_*.pth`` holds it."""
    out = {"query_tokens": hf_blip2["query_tokens"].clone()}
    for name, t in hf_blip2.items():
        if name.startswith("vision_model.post_layernorm."):
            out["ln_vision." + name.rsplit(".", 1)[1]] = t.clone()
        elif name.startswith("qformer."):
            lavis = name.replace("qformer.layernorm.", "Qformer.bert.embeddings.LayerNorm.")
            lavis = lavis.replace("qformer.encoder.", "Qformer.bert.encoder.")
            lavis = re.sub(r"\.(attention|crossattention)\.attention\.", r".\1.self.", lavis)
            out[lavis] = t.clone()
    return out
