"""Declared trainability, applied in one place.

A stage's recipe says which parts train (``model.trainable``); ``apply_trainable`` turns
that into ``requires_grad`` flags and returns a per-part parameter count table. Encoders
never train (each Modality freezes its own encoder).
"""

from __future__ import annotations

from torch import nn

from gptground.config import TrainableConfig
from gptground.model.lora import LoRALinear, lora_parameters
from gptground.model.new_token_embedding import install_new_token_embedding


def apply_trainable(model: nn.Module, cfg: TrainableConfig) -> None:
    """Set requires_grad on a GroundingModel's parts as the recipe declares.

    With ``decoder: false, new_token_embeddings: true`` the input embedding becomes a
    NewTokenEmbedding: a frozen base matrix plus the new tokens' rows as a parameter of
    their own. Old rows are then frozen parameters under every strategy (no gradient hook
    that FSDP or DeepSpeed could bypass); a saved folder holds the merged plain matrix.
    """
    decoder = model.decoder
    decoder.requires_grad_(cfg.decoder)
    if not cfg.decoder and cfg.new_token_embeddings and len(model.new_token_ids):
        install_new_token_embedding(decoder, model.new_token_ids).new_rows.requires_grad_(True)
    elif not cfg.new_token_embeddings and cfg.decoder:
        raise ValueError(
            "`model.trainable.decoder: true` trains the whole embedding matrix; "
            "set `new_token_embeddings: true` too (new rows cannot be frozen alone)"
        )
    for m in decoder.modules():  # LoRA's base stays frozen, its A and B follow the flag
        if isinstance(m, LoRALinear):
            m.base.requires_grad_(cfg.decoder)
    for p in lora_parameters(decoder):
        p.requires_grad_(cfg.lora.enabled)
    for modality in model.modalities.values():
        modality.adapter.requires_grad_(cfg.adapters)
        modality.encoder.requires_grad_(False)


def parameter_table(model: nn.Module) -> list[tuple[str, int, int]]:
    """(part, trainable, frozen) parameter counts: decoder, each encoder and adapter."""
    parts = [("decoder", model.decoder)]
    for name, m in model.modalities.items():
        parts += [(f"{name}.encoder", m.encoder), (f"{name}.adapter", m.adapter)]
    rows = []
    for part, module in parts:
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
        rows.append((part, trainable, frozen))
    return rows


def format_parameter_table(rows: list[tuple[str, int, int]]) -> str:
    lines = [f"{'part':<20}{'trainable':>14}{'frozen':>14}"]
    lines += [f"{p:<20}{t:>14,}{f:>14,}" for p, t, f in rows]
    total_t, total_f = sum(r[1] for r in rows), sum(r[2] for r in rows)
    lines.append(f"{'total':<20}{total_t:>14,}{total_f:>14,}")
    return "\n".join(lines)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer groups: no weight decay on embeddings (new-token rows too), norms and biases."""
    decay, no_decay = [], []
    embeddings = {id(p) for p in model.decoder.get_input_embeddings().parameters()}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in embeddings or p.ndim < 2 or "norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
