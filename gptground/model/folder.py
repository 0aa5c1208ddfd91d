"""A trained model as one self-describing folder.

    <folder>/config.yaml        the model section of the resolved recipe + token ids, and the
                                conversation template and grounding format it was trained on
    <folder>/decoder_config.json the decoder's Hugging Face config (architecture only)
    <folder>/model.safetensors  every weight (decoder, encoders, adapters); a big model as
                                HF-style shards model-0000i-of-0000n.safetensors + index
    <folder>/architecture.json  each modality's architecture record (encoder shapes), so the
                                folder rebuilds without the encoders' original checkpoints
    <folder>/tokenizer/         tokenizer files, modality tokens included

The folder is written to a temporary sibling and renamed into place, so a kill during a
save leaves either the old folder or the new one, never a half-written one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Mapping

import torch
from omegaconf import OmegaConf

from gptground.model.lora import merged_state_dict
from gptground.model.safetensors_io import INDEX_FILE, MAX_SHARD_BYTES, SINGLE_FILE, weight_files, write_weights

CONFIG_FILE = "config.yaml"
TOKENIZER_DIR = "tokenizer"
DECODER_CONFIG_FILE = "decoder_config.json"
ARCHITECTURE_FILE = "architecture.json"
# What folders written before the text settings were recorded were trained with.
LEGACY_TEXT_SETTINGS = {"template": "groundinggpt", "grounding_format": "groundinggpt"}


def save_model_folder(
    model, tokenizer, model_config, path: str,
    template: str = LEGACY_TEXT_SETTINGS["template"],
    grounding_format: str = LEGACY_TEXT_SETTINGS["grounding_format"],
    state: Mapping[str, torch.Tensor] | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> str:
    """Write ``model`` (a GroundingModel) with its config and tokenizer to ``path``.

    ``template`` and ``grounding_format`` (the recipe's ``data.template`` and
    ``data.grounding_format``) are recorded so that inference writes prompts and reads
    answers the way the model was trained to, without the user repeating them.

    The weights are ``merged_state_dict(model)`` unless ``state`` gives them (e.g. the full
    state gathered from FSDP shards, LoRA already merged), streamed tensor by tensor: nothing
    is cloned. Above ``max_shard_bytes`` they are written as shards.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        cfg = OmegaConf.create(
            {
                "model": dataclasses.asdict(model_config),
                "patch_token_ids": dict(model.patch_token_ids),
                "text": {"template": template, "grounding_format": grounding_format},
            }
        )
        OmegaConf.save(cfg, os.path.join(tmp, CONFIG_FILE))
        model.decoder.config.to_json_file(os.path.join(tmp, DECODER_CONFIG_FILE))
        architecture = {name: m.architecture() for name, m in model.modalities.items()}
        with open(os.path.join(tmp, ARCHITECTURE_FILE), "w") as f:
            json.dump(architecture, f, indent=1)
        # LoRA is merged into plain weights (only those tensors are new); the rest are written
        # from the model's own storage.
        write_weights(merged_state_dict(model) if state is None else state, tmp, max_shard_bytes)
        tokenizer.save_pretrained(os.path.join(tmp, TOKENIZER_DIR))
        old = None
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.replace(path, os.path.join(old, "x"))
        os.replace(tmp, path)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_folder_config(path: str):
    cfg_path = os.path.join(path, CONFIG_FILE)
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"{path} is not a GPTGround model folder: no {CONFIG_FILE}")
    return OmegaConf.load(cfg_path)


def resolve_text_settings(path: str, template: str | None = None, fmt: str | None = None) -> tuple[str, str]:
    """(template, grounding format): those given, else those the folder's model was trained
    with (folders older than that record: LEGACY_TEXT_SETTINGS)."""
    if template is None or fmt is None:
        recorded = {**LEGACY_TEXT_SETTINGS, **(read_folder_config(path).get("text") or {})}
        template, fmt = template or str(recorded["template"]), fmt or str(recorded["grounding_format"])
    return template, fmt


def folder_weight_files(path: str) -> list[str]:
    """The folder's weight files (one, or the shards of its index)."""
    files = weight_files(path)
    if not files:
        raise FileNotFoundError(f"{path} is not a GPTGround model folder: no {SINGLE_FILE} or {INDEX_FILE}")
    return files


def read_architecture(path: str) -> dict[str, dict]:
    """modality name -> architecture record; {} for folders written before records existed."""
    record = os.path.join(path, ARCHITECTURE_FILE)
    if not os.path.exists(record):
        return {}
    with open(record) as f:
        return json.load(f)
