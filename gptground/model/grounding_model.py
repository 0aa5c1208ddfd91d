"""GroundingModel: a decoder plus a dict of modalities, joined at the patch-token positions.

One sample's tokens look like ``... <im_start> <im_patch> x N <im_end> ...``. The decoder
embeds the ids, then each modality's adapter output (B_m, N, d_model) replaces the
embeddings at that modality's patch positions. The model never sees text or files: the
processor makes every tensor it gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlamaForCausalLM

from gptground.processor import IGNORE_INDEX
from modalities import Modality


@dataclass
class LabelledOutput:
    """Loss of a labelled batch and the logits it came from.

    ``logits`` (K, vocab) are those of the K positions whose next token is labelled, in
    row-major order, not the full (B, T, vocab) tensor.
    """

    loss: torch.Tensor
    logits: torch.Tensor


class PlaceholderCountError(ValueError):
    """Patch tokens in the ids and features from a modality disagree in number."""


class GroundingModel(nn.Module):
    """Decoder + modalities + the ids of each modality's patch token.

    Args:
        decoder: a causal LM whose embeddings already include the modality tokens.
        modalities: name -> Modality, e.g. {"image": ImageModality, "video": ...}.
        patch_token_ids: name -> id of that modality's ``<xx_patch>`` token.
        new_token_ids: ids of all tokens added for the modalities (start, patch, end).
    """

    def __init__(
        self,
        decoder: LlamaForCausalLM,
        modalities: Mapping[str, Modality],
        patch_token_ids: Mapping[str, int],
        new_token_ids: Sequence[int],
    ):
        super().__init__()
        missing = set(modalities) - set(patch_token_ids)
        if missing:
            raise ValueError(f"no patch token id for modalities {sorted(missing)}")
        self.decoder = decoder
        self.modalities = nn.ModuleDict(dict(modalities))
        self.patch_token_ids = dict(patch_token_ids)
        self.register_buffer(
            "new_token_ids", torch.tensor(sorted(new_token_ids), dtype=torch.long), persistent=False
        )

    @property
    def d_model(self) -> int:
        return self.decoder.get_input_embeddings().embedding_dim

    def media_tokens(
        self, media: Mapping[str, torch.Tensor], encoded: Sequence[str] = ()
    ) -> dict[str, torch.Tensor]:
        """Each modality's decoder tokens: name -> (B_m, N, d_model).

        ``encoded`` names the modalities whose inputs are already frozen-encoder features
        (from a FeatureStore): only their adapters run.
        """
        return {
            name: self.modalities[name].adapt(x) if name in encoded else self.modalities[name](x)
            for name, x in media.items()
        }

    def embed(
        self,
        input_ids: torch.Tensor,
        media_tokens: Mapping[str, torch.Tensor],
        media_index: Mapping[str, torch.Tensor],
        sample_ids: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Token embeddings with media tokens scattered in: (B, T) -> (B, T, d_model).

        Args:
            media_tokens: name -> (B_m, N, d_model), rows in the order of ``media_index``.
            media_index: name -> (B_m,) batch row of each media item, ascending.
        """
        embeds = self.decoder.get_input_embeddings()(input_ids)  # (B, T, d)
        for name, tokens in media_tokens.items():
            rows = media_index[name]
            patch = input_ids == self.patch_token_ids[name]  # (B, T)
            self._check_counts(name, patch, rows, tokens.shape[1], sample_ids)
            # Row-major order of the mask matches (B_m, N) flattened because rows ascend.
            embeds = embeds.masked_scatter(patch.unsqueeze(-1), tokens.to(embeds.dtype))
        return embeds

    def _check_counts(self, name, patch, rows, n, sample_ids) -> None:
        expected = torch.zeros(patch.shape[0], dtype=torch.long, device=patch.device)
        expected[rows] = n
        found = patch.sum(dim=1)
        bad = (found != expected).nonzero().flatten().tolist()
        if bad:
            who = [sample_ids[i] if sample_ids else f"row {i}" for i in bad]
            details = ", ".join(
                f"{w}: {found[i].item()} <{name}> patch tokens, {expected[i].item()} expected"
                for w, i in zip(who, bad)
            )
            raise PlaceholderCountError(f"{name} token count mismatch in samples [{details}]")
        if len(rows) > 1 and bool((rows[1:] <= rows[:-1]).any()):
            raise PlaceholderCountError(f"{name}: media_index must be strictly ascending, got {rows.tolist()}")

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        media: Mapping[str, torch.Tensor] | None = None,
        media_index: Mapping[str, torch.Tensor] | None = None,
        labels: torch.Tensor | None = None,
        sample_ids: Sequence[str] | None = None,
        media_tokens: Mapping[str, torch.Tensor] | None = None,
        encoded: Sequence[str] = (),
    ):
        """The decoder's output (logits (B, T, vocab)); with ``labels``, a LabelledOutput.

        ``media_tokens`` may be passed instead of ``media`` when they are already computed
        (the Python API encodes a video once for many questions).
        """
        if media_tokens is None:
            media_tokens = self.media_tokens(media or {}, encoded)
        embeds = self.embed(input_ids, media_tokens, media_index or {}, sample_ids)
        if labels is None:
            return self.decoder(inputs_embeds=embeds, attention_mask=attention_mask)
        hidden = self.decoder.model(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        # Position t predicts token t + 1. Only the labelled positions go through the LM head:
        # answers are a small part of a sequence that is mostly prompt and media tokens, so
        # this skips most of the (B, T, vocab) logits and their softmax (a third of a tiny
        # model's step; most of a large-vocabulary model's activation memory).
        targets = labels[:, 1:]
        keep = targets != IGNORE_INDEX
        logits = self.decoder.lm_head(hidden[:, :-1][keep])  # (K, vocab)
        # NaN when K = 0 (every answer truncated away): the training step then skips the batch.
        return LabelledOutput(loss=F.cross_entropy(logits.float(), targets[keep]), logits=logits)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        media_tokens: Mapping[str, torch.Tensor],
        media_index: Mapping[str, torch.Tensor],
        max_new_tokens: int = 64,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
        logits_processor=None,
    ) -> torch.Tensor:
        """Greedy continuation of left-padded prompts: (B, T) -> (B, new tokens) ids."""
        embeds = self.embed(input_ids, media_tokens, media_index)
        return self.decoder.generate(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
            logits_processor=logits_processor,
        )
