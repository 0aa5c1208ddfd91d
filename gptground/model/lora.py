"""LoRA for the decoder's linear layers: y = W x + (alpha / r) * B(A(dropout(x))).

B starts at zero, so a freshly wrapped model computes exactly what the base model does.
"""

from __future__ import annotations

import math

from torch import nn

from gptground.config import LoraConfig
from gptground.model.new_token_embedding import fold_new_token_rows
from gptground.model.state_keys import state_key_prefix


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base
        self.lora_a = nn.Linear(base.in_features, rank, bias=False)
        self.lora_b = nn.Linear(rank, base.out_features, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.scale = alpha / rank
        nn.init.kaiming_uniform_(self.lora_a.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_b.weight)

    def forward(self, x):
        return self.base(x) + self.scale * self.lora_b(self.lora_a(self.dropout(x)))


def add_lora(module: nn.Module, cfg: LoraConfig) -> list[str]:
    """Wrap every ``nn.Linear`` whose attribute name is in ``cfg.targets``; returns their paths."""
    wrapped = []
    for path, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            if name in cfg.targets and isinstance(child, nn.Linear):
                setattr(parent, name, LoRALinear(child, cfg.rank, cfg.alpha, cfg.dropout))
                wrapped.append(f"{path}.{name}" if path else name)
    if not wrapped:
        raise ValueError(f"`model.trainable.lora.targets` {cfg.targets} matched no nn.Linear")
    return wrapped


def lora_parameters(module: nn.Module):
    for m in module.modules():
        if isinstance(m, LoRALinear):
            yield from m.lora_a.parameters()
            yield from m.lora_b.parameters()


def merged_state_dict(module: nn.Module, state: dict | None = None) -> dict:
    """The state dict with every LoRA update folded into its base weight, and the trained
    new-token rows (NewTokenEmbedding) written into one plain embedding weight.

    Saved model folders hold plain weights (W + alpha/r * B A; ``embed_tokens.weight``), so
    they load into a model without LoRA or split embedding, and a later stage may add fresh
    LoRA adapters of its own. ``state`` (default ``module.state_dict()``) is a full state of
    ``module`` held elsewhere, e.g. gathered from FSDP shards. Only merged weights are new
    tensors; the rest are the state's own.
    """
    state = dict(module.state_dict() if state is None else state)
    for path, m in module.named_modules():
        if not isinstance(m, LoRALinear):
            continue
        prefix = state_key_prefix(path)  # FSDP / checkpoint wrappers are not in state-dict keys
        delta = m.scale * (state[f"{prefix}lora_b.weight"] @ state[f"{prefix}lora_a.weight"])
        base = state.pop(f"{prefix}base.weight")
        state[f"{prefix}weight"] = base + delta.to(base.dtype)
        if f"{prefix}base.bias" in state:
            state[f"{prefix}bias"] = state.pop(f"{prefix}base.bias")
        del state[f"{prefix}lora_a.weight"], state[f"{prefix}lora_b.weight"]
    return fold_new_token_rows(module, state)
