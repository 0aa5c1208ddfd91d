"""The decoder's input embedding split in two: frozen old rows, trainable new-token rows.

Stage 1 trains only the embedding rows of the added modality tokens. Freezing the other
rows of one trainable matrix (a gradient hook, a mask) depends on how a strategy runs the
backward pass: under FSDP the forward pass goes through views of a flat parameter and a
hook on the original weight never fires, so every row trained. Here the new rows are a
parameter of their own, (K, d_model), next to the frozen (V, d_model) base embedding:
whatever a strategy shards, gathers or reduces, the frozen rows are a frozen parameter
and the optimizer never holds them.

A saved model folder holds one plain embedding: ``fold_new_token_rows`` writes the new
rows into a copy of the base weight (``lora.merged_state_dict`` calls it), so the folder
keeps the key ``decoder.model.embed_tokens.weight`` and loads into a plain model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gptground.model.state_keys import state_key_prefix


class NewTokenEmbedding(nn.Module):
    """Embedding lookup over ``base`` whose rows ``new_ids`` come from ``new_rows`` instead.

    Args:
        base: the decoder's (V, d_model) input embedding; frozen here.
        new_ids: (K,) ids of the trainable rows; ``new_rows`` starts as their base rows.
    """

    def __init__(self, base: nn.Embedding, new_ids: torch.Tensor):
        super().__init__()
        self.base = base.requires_grad_(False)
        ids = torch.as_tensor(new_ids, dtype=torch.long, device=base.weight.device)
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= base.num_embeddings:
            raise ValueError(f"new token ids {ids.tolist()} must be in [0, {base.num_embeddings})")
        self.new_rows = nn.Parameter(base.weight.detach()[ids].clone())  # (K, d_model)
        # (V,) slot of each id in new_rows, -1 for an old token: one gather per lookup.
        slot = torch.full((base.num_embeddings,), -1, dtype=torch.long, device=ids.device)
        slot[ids] = torch.arange(len(ids), device=ids.device)
        # Not saved: rebuilt from the model's token ids whenever the split is installed.
        self.register_buffer("new_ids", ids, persistent=False)
        self.register_buffer("slot", slot, persistent=False)

    @property
    def embedding_dim(self) -> int:
        return self.base.embedding_dim

    @property
    def num_embeddings(self) -> int:
        return self.base.num_embeddings

    @property
    def padding_idx(self):
        return self.base.padding_idx

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(...,) ids -> (..., d_model) embeddings; only new-token positions carry a gradient."""
        embeds = self.base(input_ids)
        slot = self.slot[input_ids]
        is_new = (slot >= 0).unsqueeze(-1)
        new = F.embedding(slot.clamp(min=0), self.new_rows).to(embeds.dtype)
        return torch.where(is_new, new, embeds)


def install_new_token_embedding(decoder: nn.Module, new_ids: torch.Tensor) -> NewTokenEmbedding:
    """Replace the decoder's input embedding by a NewTokenEmbedding (idempotent)."""
    current = decoder.get_input_embeddings()
    if isinstance(current, NewTokenEmbedding):
        return current
    split = NewTokenEmbedding(current, new_ids)
    decoder.set_input_embeddings(split)
    return split


def fold_new_token_rows(module: nn.Module, state: dict) -> dict:
    """``state`` (module's state dict) with each NewTokenEmbedding's ``base.weight`` and
    ``new_rows`` replaced by one merged ``weight`` under the embedding's own path."""
    for path, m in module.named_modules():
        if isinstance(m, NewTokenEmbedding):
            prefix = state_key_prefix(path)
            base, rows = state.pop(f"{prefix}base.weight"), state.pop(f"{prefix}new_rows")
            weight = base.detach().clone()
            weight[m.new_ids.to(weight.device)] = rows.detach().to(weight.dtype)
            state[f"{prefix}weight"] = weight
    return state
