"""Finding and safely reading pretrained weights: HF folders, hub ids, ``.pth``/``.safetensors``.

Three rules hold for every loader here:

* Nothing is unpickled beyond tensors: ``.safetensors`` are read with safetensors, pickled
  files with ``torch.load(weights_only=True)``, which refuses arbitrary Python objects.
* A checkpoint that is not there fails at once with ``CheckpointNotFoundError`` naming the
  location and the recipe key that sets it: a hub id is only handed to ``from_pretrained``
  when it is cached locally, or when the hub is online and reachable (never a silent hang).
* Weights that do not fit (missing, unexpected or mis-shaped keys) raise
  ``CheckpointFormatError`` listing a few of each; nothing is silently left random.

It also holds the key mapping from LAVIS's BLIP-2 checkpoints (``blip2_pretrained*.pth``) onto
transformers' ``Blip2QFormerModel`` names.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlparse

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from modalities.errors import CheckpointFormatError, CheckpointNotFoundError

TINY = "tiny"  # the config value that asks for a tiny random-weight build instead of a checkpoint
_PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_TRUE = {"1", "true", "yes", "on"}
_SHOWN = 5  # how many offending keys an error message lists


# --- locating -----------------------------------------------------------------------------
def hub_offline() -> bool:
    """True when the environment forbids hub access (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_pretrained(location: str, recipe_key: str) -> str:
    """A local path for ``location``, or the hub id itself when it can really be downloaded.

    A hub id's cached snapshot counts only when it holds a model's files (``config.json``
    plus weights or a weights index with every shard it names): loading a tokenizer from
    the same repo id first leaves a snapshot folder without weights, which must not pass
    for the model.

    Args:
        location: a local file or folder, or a hub id such as ``openai/clip-vit-large-patch14``.
        recipe_key: the dotted recipe key that set ``location``, for the error message.

    Raises:
        CheckpointNotFoundError: a missing path; or a hub id that is not (completely) in the
            local cache while offline or while the hub cannot be reached.
    """
    path = os.path.expanduser(location)
    if os.path.exists(path):
        return path
    if looks_like_path(location):
        raise CheckpointNotFoundError(location, recipe_key, "no such file or folder")
    cached = _cached_snapshot(location)
    missing = missing_model_files(cached) if cached is not None else []
    if cached is not None and not missing:
        return cached
    if hub_offline():
        if cached is None:
            detail = "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
        else:
            detail = (
                f"HF_HUB_OFFLINE is set and its cached snapshot {cached} lacks {', '.join(missing)}; "
                f"fetch the whole model once with `hf download {location}` where the hub is reachable"
            )
        raise CheckpointNotFoundError(location, recipe_key, detail)
    endpoint = _hub_endpoint()
    if not _reachable(endpoint):
        raise CheckpointNotFoundError(location, recipe_key, f"the hub at {endpoint} cannot be reached")
    return location  # from_pretrained downloads what the cache lacks


def looks_like_path(location: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a filesystem path."""
    return (
        location.startswith(("/", ".", "~"))
        or location.count("/") > 1
        or location.endswith((*_PICKLE_SUFFIXES, ".safetensors"))
    )


def _cached_snapshot(repo_id: str) -> str | None:
    """The local cache folder of a hub repo, without touching the network; None if absent."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError):
        return None


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # one-file HF weights
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")  # sharded


def missing_model_files(folder: str) -> list[str]:
    """What a Hugging Face model folder lacks to be loaded: [] when it is complete.

    Complete means ``config.json`` and either a one-file checkpoint or an index whose every
    shard is present.
    """
    missing = [] if os.path.isfile(os.path.join(folder, "config.json")) else ["config.json"]
    if any(os.path.isfile(os.path.join(folder, f)) for f in WEIGHT_FILES):
        return missing
    for index in WEIGHT_INDEXES:
        index_path = os.path.join(folder, index)
        if os.path.isfile(index_path):
            with open(index_path) as f:
                shards = sorted(set(json.load(f).get("weight_map", {}).values()))
            return missing + [s for s in shards if not os.path.isfile(os.path.join(folder, s))]
    return missing + [f"weights ({' or '.join(WEIGHT_FILES + WEIGHT_INDEXES)})"]


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _reachable(url: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout_s``."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


# --- reading --------------------------------------------------------------------------------
def load_state_dict_file(path: str, recipe_key: str) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or pickled (``.pth``/``.pt``/``.bin``/``.ckpt``) file.

    A pickled checkpoint may wrap its weights as ``{"model": ...}`` or ``{"state_dict": ...}``
    (LAVIS, Lightning); the wrapper is removed. Non-tensor entries beside the weights are
    dropped.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CheckpointFormatError: unknown extension, Python objects beyond tensors, or no tensors.
    """
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(path, recipe_key, "no such file")
    if path.endswith(".safetensors"):
        return load_file(path, device="cpu")
    if not path.endswith(_PICKLE_SUFFIXES):
        raise CheckpointFormatError(
            path, recipe_key, f"unknown weights file type; expected .safetensors or one of {_PICKLE_SUFFIXES}"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise CheckpointFormatError(
            path, recipe_key,
            f"cannot be read as plain tensors with torch.load(weights_only=True): {e}. "
            "Files holding arbitrary Python objects are refused; re-save the state dict alone "
            "(or as .safetensors) with a trusted Python.",
        ) from e
    return _tensors_of(obj, path, recipe_key)


def _tensors_of(obj: object, path: str, recipe_key: str) -> dict[str, torch.Tensor]:
    """The flat name -> tensor dict inside a loaded checkpoint object."""
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise CheckpointFormatError(path, recipe_key, f"holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointFormatError(path, recipe_key, "holds no tensors")
    return tensors


def read_hf_weights(folder: str, prefixes: Iterable[str], recipe_key: str) -> dict[str, torch.Tensor]:
    """The tensors of a Hugging Face model folder whose names start with one of ``prefixes``.

    Reads only those tensors from (possibly sharded) safetensors files, so the Q-Former of a
    multi-billion-parameter BLIP-2 folder loads without reading its language model.
    """
    prefixes = tuple(prefixes)
    index = os.path.join(folder, "model.safetensors.index.json")
    single = os.path.join(folder, "model.safetensors")
    if os.path.isfile(index):
        with open(index) as f:
            weight_map: dict[str, str] = json.load(f)["weight_map"]
    elif os.path.isfile(single):
        weight_map = {name: "model.safetensors" for name in _safetensors_keys(single)}
    else:
        pickled = os.path.join(folder, "pytorch_model.bin")
        if not os.path.isfile(pickled):
            raise CheckpointFormatError(folder, recipe_key, "no model.safetensors(.index.json) or pytorch_model.bin")
        return {k: v for k, v in load_state_dict_file(pickled, recipe_key).items() if k.startswith(prefixes)}
    wanted: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if name.startswith(prefixes):
            wanted.setdefault(shard, []).append(name)
    out: dict[str, torch.Tensor] = {}
    for shard, names in wanted.items():
        with safe_open(os.path.join(folder, shard), framework="pt", device="cpu") as f:
            out.update({name: f.get_tensor(name) for name in names})
    return out


def _safetensors_keys(path: str) -> list[str]:
    with safe_open(path, framework="pt", device="cpu") as f:
        return list(f.keys())


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], location: str, recipe_key: str) -> None:
    """Load ``state`` into ``module``; every key must exist on both sides with equal shapes.

    Raises:
        CheckpointFormatError: listing a few missing, unexpected and mis-shaped keys.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    problems = [
        f"{len(keys)} {what}: {keys[:_SHOWN]}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped (file vs model)", misshaped))
        if keys
    ]
    if problems:
        raise CheckpointFormatError(location, recipe_key, "weights do not fit: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


# --- LAVIS BLIP-2 -> transformers names -----------------------------------------------------
# Parts of a LAVIS BLIP-2 checkpoint that the frozen video Q-Former does not use: the vision
# tower (loaded separately), the text branch of the Q-Former (word/position embeddings, the
# text feed-forward `intermediate`/`output` of each layer, the MLM head) and the heads of the
# pre-training losses and language models.
_LAVIS_UNUSED = [re.compile(p) for p in (
    r"^visual_encoder\.",
    r"^Qformer\.cls\.",
    r"^Qformer\.bert\.pooler\.",
    r"^Qformer\.bert\.embeddings\.(word_embeddings|position_embeddings)\.",
    r"^Qformer\.bert\.embeddings\.position_ids$",
    r"^Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\.",
    r"^(vision_proj|text_proj|itm_head)\.",
    r"^temp$",
    r"^(opt|t5|llm)_(model|proj)\.",
)]
# (LAVIS name pattern, transformers name) for everything the video Q-Former does use. LAVIS's
# BERT calls the attention block `self`; transformers' Blip2QFormer calls it `attention`.
_LAVIS_RENAMES = [(re.compile(p), r) for p, r in (
    (r"^query_tokens$", "query_tokens"),
    (r"^ln_vision\.(weight|bias)$", r"vision_norm.\1"),
    (r"^Qformer\.bert\.embeddings\.LayerNorm\.(weight|bias)$", r"qformer.layernorm.\1"),
    (r"^Qformer\.bert\.encoder\.layer\.(\d+)\.(attention|crossattention)\.self\.(query|key|value)\.(weight|bias)$",
     r"qformer.encoder.layer.\1.\2.attention.\3.\4"),
    (r"^Qformer\.bert\.encoder\.layer\.(\d+)\.(attention|crossattention)\.output\.(dense|LayerNorm)\.(weight|bias)$",
     r"qformer.encoder.layer.\1.\2.output.\3.\4"),
    (r"^Qformer\.bert\.encoder\.layer\.(\d+)\.(intermediate_query)\.dense\.(weight|bias)$",
     r"qformer.encoder.layer.\1.\2.dense.\3"),
    (r"^Qformer\.bert\.encoder\.layer\.(\d+)\.(output_query)\.(dense|LayerNorm)\.(weight|bias)$",
     r"qformer.encoder.layer.\1.\2.\3.\4"),
)]


def map_lavis_blip2_keys(state: dict[str, torch.Tensor], location: str, recipe_key: str) -> dict[str, torch.Tensor]:
    """Rename a LAVIS BLIP-2 state dict onto ``BlipQFormer``'s names, dropping unused parts.

    Result keys: ``query_tokens``, ``vision_norm.*`` (LAVIS ``ln_vision``) and ``qformer.*``
    (transformers ``Blip2QFormerModel``).

    Raises:
        CheckpointFormatError: a key that is neither mapped nor known to be unused.
    """
    names, unknown = rename_keys(state, lavis_qformer_name, lambda name: any(p.search(name) for p in _LAVIS_UNUSED))
    mapped = {new: state[name] for name, new in names.items()}
    if unknown:
        raise CheckpointFormatError(
            location, recipe_key,
            f"{len(unknown)} keys are not in LAVIS's BLIP-2 layout: {sorted(unknown)[:_SHOWN]}",
        )
    return mapped


def rename_keys(
    keys: Iterable[str], rename: Callable[[str], str | None], skip: Callable[[str], bool]
) -> tuple[dict[str, str], list[str]]:
    """({key: new name} for every key ``rename`` maps, [keys it does not map]); keys that
    ``skip`` names (known and unused) are in neither. The one loop of every strict key map."""
    names: dict[str, str] = {}
    unknown: list[str] = []
    for key in keys:
        if skip(key):
            continue
        new = rename(key)
        if new is None:
            unknown.append(key)
        else:
            names[key] = new
    return names, unknown


def lavis_qformer_name(name: str) -> str | None:
    """``BlipQFormer``'s name for one LAVIS BLIP-2 key (``query_tokens``, ``ln_vision.*``,
    ``Qformer.bert.*``); None for a name outside the mapped layout (unused or unknown)."""
    for pattern, replacement in _LAVIS_RENAMES:
        if pattern.match(name):
            return pattern.sub(replacement, name)
    return None
