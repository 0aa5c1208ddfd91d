"""Compose a GroundingModel from the model section of a recipe, or load a saved folder."""

from __future__ import annotations

import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from gptground.config import ModelConfig, recipe_from_dict
from gptground.model.decoder import build_decoder, set_gradient_checkpointing
from gptground.model.folder import (
    DECODER_CONFIG_FILE,
    TOKENIZER_DIR,
    folder_weight_files,
    read_architecture,
    read_folder_config,
)
from gptground.model.grounding_model import GroundingModel
from gptground.model.lora import add_lora
from gptground.model.meta import materialize, parameters_on_meta
from gptground.model.safetensors_io import read_weights_into
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


def weights_dtype(precision: str) -> torch.dtype:
    """The dtype a trainer precision keeps weights in: bf16 for "bf16-true", fp16 for
    "16-true", fp32 otherwise (mixed precision keeps fp32 masters and casts per op)."""
    return {"bf16-true": torch.bfloat16, "16-true": torch.float16}.get(str(precision), torch.float32)


def build_model(cfg: ModelConfig, dtype: torch.dtype = torch.float32):
    """(GroundingModel, tokenizer) from a recipe's model section, weights in ``dtype``.

    With ``init_from`` (a folder path; see ``gptground.config.init_from`` for run names) the
    decoder architecture, tokenizer and every weight come from that saved folder (a previous
    stage), and each modality it holds is rebuilt from the folder's architecture record, not
    from its original checkpoint; the modalities' configs still come from the recipe, and a
    modality new in this stage is built from its own checkpoint. Then LoRA is added if the
    recipe asks for it, and ``model.decoder.gradient_checkpointing`` is applied (on or off)
    whichever way the decoder was built.
    """
    if cfg.init_from:
        model, tokenizer = _from_folder(cfg.init_from, cfg, dtype)
    else:
        tokenizer = load_tokenizer(cfg.tokenizer)
        decoder = build_decoder(cfg.decoder, len(tokenizer), dtype)
        modalities = _build_modalities(cfg, decoder.config.hidden_size)
        model = _assemble(decoder, modalities, tokenizer)
    model.to(dtype)  # encoders and adapters read from their checkpoints come in fp32
    if cfg.trainable.lora.enabled:
        add_lora(model.decoder, cfg.trainable.lora)
    set_gradient_checkpointing(model.decoder, cfg.decoder.gradient_checkpointing)
    return model, tokenizer


def _from_folder(path: str, cfg: ModelConfig, dtype: torch.dtype):
    """Build on the meta device from the folder's records, then read the weights into ``dtype``."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model folder not found: {path!r} (set by recipe key `model.init_from`)")
    read_folder_config(path)  # fails clearly if this is not a model folder
    files = folder_weight_files(path)
    records = read_architecture(path)
    tokenizer = load_tokenizer(os.path.join(path, TOKENIZER_DIR), recipe_key="model.init_from")
    decoder_config = LlamaConfig.from_json_file(os.path.join(path, DECODER_CONFIG_FILE))
    decoder_config._attn_implementation = cfg.decoder.attn_implementation
    d_model = decoder_config.hidden_size
    with parameters_on_meta():
        decoder = LlamaForCausalLM(decoder_config)
        recorded = {
            name: build_modality(name, mcfg, d_model, architecture=records[name])
            for name, mcfg in cfg.modalities.items()
            if name in records
        }
    for module in (decoder, *recorded.values()):
        materialize(module, dtype)
    # A modality new in this stage, or any modality of a folder written before the records
    # existed, is built from its checkpoint; the folder's weights (if any) then replace them.
    modalities = {
        name: recorded[name] if name in records else build_modality(name, mcfg, d_model)
        for name, mcfg in cfg.modalities.items()
    }
    _load_folder_weights(path, files, decoder, modalities, set(recorded))
    # Growing after loading: tokens of a modality new in this stage start at the mean row.
    return _assemble(decoder, modalities, tokenizer), tokenizer


def _load_folder_weights(path, files, decoder, modalities: dict, recorded: set[str]) -> None:
    """Read the folder's weights into the decoder and the modalities, refusing any misfit.

    Every decoder weight and every weight of a recorded modality must be in the folder; a
    modality that is not recorded is either wholly in it or wholly absent (new this stage).
    Weights of modalities this recipe does not use are skipped.
    """
    parts = {"decoder": decoder, **{f"modalities.{n}": m for n, m in modalities.items()}}
    destinations = {f"{prefix}.{k}": v for prefix, part in parts.items() for k, v in part.state_dict(keep_vars=True).items()}
    found = read_weights_into(files, destinations)
    used = ("decoder.", *(f"modalities.{n}." for n in modalities))
    unexpected = sorted(k for k in found - set(destinations) if k.startswith(used))
    missing = []
    for prefix, part in parts.items():
        wanted = [f"{prefix}.{k}" for k in part.state_dict()]
        absent = [k for k in wanted if k not in found]
        whole_or_nothing = prefix.startswith("modalities.") and prefix.split(".", 1)[1] not in recorded
        if absent and not (whole_or_nothing and len(absent) == len(wanted)):
            missing += absent
    if missing or unexpected:
        raise ValueError(
            f"{path}: saved weights do not match the recipe's config: {len(missing)} missing "
            f"{missing[:5]}, {len(unexpected)} unexpected {unexpected[:5]}"
        )


def load_model(path: str, dtype: torch.dtype = torch.float32):
    """(GroundingModel in eval mode, tokenizer, ModelConfig) from a saved folder, weights in ``dtype``.

    Reads only the folder: it loads from any working directory with the encoders' original
    checkpoints gone.
    """
    cfg = recipe_from_dict({"model": read_folder_config(path).model}, f"{path}/config.yaml").model
    cfg.init_from = path
    cfg.trainable.lora.enabled = False  # saved folders hold merged weights
    model, tokenizer = build_model(cfg, dtype)
    return model.eval(), tokenizer, cfg
