"""Build the LLaMA/Vicuna decoder: from a Hugging Face folder or hub id, or a tiny config."""

from __future__ import annotations

import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gptground.config import DecoderConfig
from modalities import CheckpointNotFoundError
from modalities.checkpoints import missing_model_files, resolve_pretrained

DECODER_KEY = "model.decoder.path"


def tiny_llama_config(cfg: DecoderConfig, vocab_size: int) -> LlamaConfig:
    t = cfg.tiny
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_heads,
        intermediate_size=t.intermediate_size,
        max_position_embeddings=t.max_position_embeddings,
        tie_word_embeddings=False,
        attn_implementation=cfg.attn_implementation,
    )


def build_decoder(cfg: DecoderConfig, vocab_size: int) -> LlamaForCausalLM:
    """The decoder with pretrained weights (``cfg.path``) or random tiny weights ("tiny").

    ``vocab_size`` is the tokenizer's size *before* modality tokens are added; the caller
    resizes the embeddings once the new tokens are known.
    """
    if cfg.path == "tiny":
        return LlamaForCausalLM(tiny_llama_config(cfg, vocab_size))
    return LlamaForCausalLM.from_pretrained(
        _resolve(cfg.path),
        torch_dtype=torch.float32,  # Lightning's precision plugin casts; masters stay fp32
        attn_implementation=cfg.attn_implementation,
    )


def set_gradient_checkpointing(decoder: LlamaForCausalLM, enabled: bool) -> None:
    """Recompute each decoder layer's activations in backward (``enabled``), or keep them.

    Non-reentrant: the reentrant variant computes no gradient inside a block when none of
    its tensor inputs requires grad (LoRA on a decoder whose embedding is frozen: A and B
    would get none), which a frozen decoder with few trainable parts easily meets.
    Checkpointing runs in training mode only (HF skips it in eval).
    """
    if not hasattr(decoder, "activation_checkpointing_enable"):  # transformers before the rename
        if enabled:
            decoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            decoder.gradient_checkpointing_disable()
    elif enabled:
        decoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        decoder.activation_checkpointing_disable()


def _resolve(path: str) -> str:
    """Fail at once, naming the recipe key, when the weights are not reachable."""
    resolved = resolve_pretrained(path, DECODER_KEY)
    missing = missing_model_files(resolved) if os.path.isdir(resolved) else []
    if missing:
        raise CheckpointNotFoundError(path, DECODER_KEY, f"the folder lacks {', '.join(missing)}")
    return resolved
