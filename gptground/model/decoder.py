"""Build the LLaMA/Vicuna decoder: from a Hugging Face folder or hub id, or a tiny config."""

from __future__ import annotations

import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gptground.config import DecoderConfig
from modalities import CheckpointNotFoundError

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
        local_files_only=_offline(),
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _resolve(path: str) -> str:
    """Fail at once, naming the recipe key, when the weights are not reachable.

    A local folder must hold a config.json; a hub id must be in the local cache when offline
    or downloadable otherwise (``from_pretrained`` raises OSError, converted here).
    """
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "config.json")):
            raise CheckpointNotFoundError(path, DECODER_KEY, "folder has no config.json")
        return path
    if path.startswith((".", "/", "~")) or os.sep in path.strip("/").split("/", 1)[-1]:
        raise CheckpointNotFoundError(path, DECODER_KEY, "no such folder")
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(path, "config.json")
    if isinstance(cached, str):
        return path
    try:
        from huggingface_hub import model_info

        model_info(path, timeout=5)
    except Exception as e:  # offline, unknown id, or no network: all mean "not reachable"
        raise CheckpointNotFoundError(path, DECODER_KEY, f"not cached and not reachable: {type(e).__name__}") from e
    return path
