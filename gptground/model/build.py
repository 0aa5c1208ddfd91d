"""Compose a GroundingModel from the model section of a recipe, or load a saved folder."""

from __future__ import annotations

import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gptground.config import ModelConfig, recipe_from_dict
from gptground.model.decoder import build_decoder, set_gradient_checkpointing
from gptground.model.folder import DECODER_CONFIG_FILE, TOKENIZER_DIR, load_state, read_folder_config
from gptground.model.grounding_model import GroundingModel
from gptground.model.lora import add_lora
from gptground.processor import add_modality_tokens, modality_token_ids
from gptground.tokenizer import load_tokenizer
from modalities import Modality, build_modality


def _build_modalities(cfg: ModelConfig, d_model: int) -> dict[str, Modality]:
    return {name: build_modality(name, mcfg, d_model) for name, mcfg in cfg.modalities.items()}


@torch.no_grad()
def _grow_embeddings(decoder: LlamaForCausalLM, vocab_size: int) -> None:
    """Resize to ``vocab_size``; every new row (input and output) = the mean of the old rows."""
    old = decoder.get_input_embeddings().weight.shape[0]
    decoder.resize_token_embeddings(vocab_size, mean_resizing=False)
    for matrix in (decoder.get_input_embeddings().weight, decoder.get_output_embeddings().weight):
        matrix[old:] = matrix[:old].mean(dim=0, keepdim=True)


def _assemble(decoder, modalities, tokenizer) -> GroundingModel:
    add_modality_tokens(tokenizer, list(modalities.values()))  # no-op for tokens already there
    _grow_embeddings(decoder, len(tokenizer))
    ids = modality_token_ids(tokenizer, modalities)
    # Every modality token counts as "new" (trainable rows), also in a model loaded from a
    # folder whose tokenizer already had them.
    new_ids = [i for t in ids.values() for i in (t.start, t.patch, t.end)]
    return GroundingModel(decoder, modalities, {n: t.patch for n, t in ids.items()}, new_ids)


def build_model(cfg: ModelConfig):
    """(GroundingModel, tokenizer) from a recipe's model section.

    With ``init_from`` the decoder architecture, tokenizer and every weight come from that
    saved folder (a previous stage); the modalities' configs still come from the recipe.
    Then LoRA is added if the recipe asks for it, and ``model.decoder.gradient_checkpointing``
    is applied (on or off) whichever way the decoder was built.
    """
    if cfg.init_from:
        model, tokenizer = _from_folder(cfg.init_from, cfg)
    else:
        tokenizer = load_tokenizer(cfg.tokenizer)
        decoder = build_decoder(cfg.decoder, len(tokenizer))
        modalities = _build_modalities(cfg, decoder.config.hidden_size)
        model = _assemble(decoder, modalities, tokenizer)
    if cfg.trainable.lora.enabled:
        add_lora(model.decoder, cfg.trainable.lora)
    set_gradient_checkpointing(model.decoder, cfg.decoder.gradient_checkpointing)
    return model, tokenizer


def _from_folder(path: str, cfg: ModelConfig):
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model folder not found: {path!r} (set by recipe key `model.init_from`)")
    read_folder_config(path)  # fails clearly if this is not a model folder
    state = load_state(path)
    tokenizer = load_tokenizer(os.path.join(path, TOKENIZER_DIR), recipe_key="model.init_from")
    decoder = LlamaForCausalLM(LlamaConfig.from_json_file(os.path.join(path, DECODER_CONFIG_FILE)))
    decoder.load_state_dict(_strip(state, "decoder."))
    # Growing after loading: tokens of a modality new in this stage start at the mean row.
    model = _assemble(decoder, _build_modalities(cfg, decoder.config.hidden_size), tokenizer)
    for name, modality in model.modalities.items():
        saved = _strip(state, f"modalities.{name}.")
        if saved:  # a modality new in this stage keeps its fresh weights
            _load_strict(modality, saved, f"{path} (modality {name!r})")
    return model, tokenizer


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _load_strict(module, state: dict, where: str) -> None:
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{where}: saved weights do not match the recipe's config: missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


def load_model(path: str):
    """(GroundingModel in eval mode, tokenizer, ModelConfig) from a saved folder."""
    cfg = recipe_from_dict({"model": read_folder_config(path).model}, f"{path}/config.yaml").model
    cfg.init_from = path
    cfg.trainable.lora.enabled = False  # saved folders hold merged weights
    model, tokenizer = build_model(cfg)
    return model.eval(), tokenizer, cfg
