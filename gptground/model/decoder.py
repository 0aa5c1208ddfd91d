"""Build the LLaMA/Vicuna decoder: from a Hugging Face folder or hub id, or a tiny config."""

from __future__ import annotations

import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gptground.config import DecoderConfig
from gptground.model.meta import materialize, parameters_on_meta
from gptground.model.safetensors_io import read_weights_into, weight_files
from modalities import CheckpointFormatError, CheckpointNotFoundError
from modalities.checkpoints import missing_model_files, resolve_pretrained

DECODER_KEY = "model.decoder.path"
# Computed buffers that older checkpoints saved; they are rebuilt from the config instead.
_COMPUTED_KEYS = ("rotary_emb.inv_freq",)


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


def build_decoder(cfg: DecoderConfig, vocab_size: int, dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    """The decoder with pretrained weights (``cfg.path``) or random tiny weights ("tiny").

    ``vocab_size`` is the tokenizer's size *before* modality tokens are added; the caller
    resizes the embeddings once the new tokens are known. ``dtype`` is the dtype the weights
    are kept in (fp32 masters for mixed precision, bf16 for "bf16-true"): a folder of
    safetensors is read straight into it, tensor by tensor, into a model built without
    initial weights, so the host holds the weights once.
    """
    if cfg.path == "tiny":  # random init in fp32 (the same numbers for every dtype), then cast
        return LlamaForCausalLM(tiny_llama_config(cfg, vocab_size)).to(dtype)
    path = _resolve(cfg.path)
    files = weight_files(path) if os.path.isdir(path) else []
    if not files:  # a hub id to download, or pickled weights: transformers' own loader
        return LlamaForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=cfg.attn_implementation)
    config = LlamaConfig.from_pretrained(path, attn_implementation=cfg.attn_implementation)
    with parameters_on_meta():
        decoder = LlamaForCausalLM(config)
    materialize(decoder, dtype)
    load_decoder_weights(decoder, files, path)
    return decoder


def load_decoder_weights(decoder: LlamaForCausalLM, files: list[str], where: str) -> None:
    """Fill every parameter of ``decoder`` from HF safetensors ``files``; refuse holes and extras."""
    destinations = decoder.state_dict(keep_vars=True)
    found = read_weights_into(files, destinations)
    filled = {id(destinations[k]) for k in found if k in destinations}
    # A tied output embedding is one parameter under two names: filled by either.
    missing = sorted({n for n, p in decoder.named_parameters() if id(p) not in filled})
    unexpected = sorted(k for k in found - set(destinations) if not k.endswith(_COMPUTED_KEYS))
    if missing or unexpected:
        raise CheckpointFormatError(
            where, DECODER_KEY,
            f"weights do not fit the decoder of its config.json: {len(missing)} missing {missing[:5]}, "
            f"{len(unexpected)} unexpected {unexpected[:5]}",
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
