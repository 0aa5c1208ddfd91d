"""A trainable Q-Former adapter: a fixed number of learned queries read a feature sequence.

Used by the video modality (64 queries over F frames x 32 frame tokens) and the audio
modality (8 queries over 3 window embeddings). The transformer is transformers'
``Blip2QFormerModel`` (BERT-shaped layers whose query stream cross-attends to the encoder
features); this module adds what BLIP-2 keeps outside it: the learned query tokens, an
optional learned position embedding on the *input* sequence (positions are frames or audio
windows, so the Q-Former knows their order) and a Linear projection into the decoder width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel


@dataclass
class QFormerConfig:
    """Shape of a Q-Former adapter (defaults: GroundingGPT's 2-layer video Q-Former)."""

    num_layers: int = 2  # transformer layers
    hidden_size: int = 768  # width of the queries (BERT-base: 768)
    num_heads: int = 12  # attention heads; must divide hidden_size
    intermediate_size: int = 3072  # width of each layer's feed-forward block
    num_queries: int = 64  # learned query tokens = output tokens per media item
    encoder_hidden_size: int = 768  # channel width C_enc of the features it reads
    max_positions: int = 64  # length of the learned input position embedding; 0 = none
    cross_attention_frequency: int = 1  # a cross-attention block every this many layers
    dropout: float = 0.1  # dropout on hidden states and attention probabilities (train only)

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_heads", "intermediate_size",
                     "num_queries", "encoder_hidden_size", "cross_attention_frequency"):
            if getattr(self, name) < 1:
                raise ValueError(f"QFormerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"QFormerConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"QFormerConfig.num_heads ({self.num_heads})"
            )
        if self.cross_attention_frequency > self.num_layers:
            raise ValueError(
                f"QFormerConfig.cross_attention_frequency ({self.cross_attention_frequency}) "
                f"must be <= num_layers ({self.num_layers}), else no layer reads the features"
            )
        if self.max_positions < 0:
            raise ValueError(f"QFormerConfig.max_positions must be >= 0, got {self.max_positions}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"QFormerConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_hf(self) -> Blip2QFormerConfig:
        """The equivalent transformers config (no text input branch: queries only)."""
        return Blip2QFormerConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            encoder_hidden_size=self.encoder_hidden_size,
            cross_attention_frequency=self.cross_attention_frequency,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
        )


class QFormerAdapter(nn.Module):
    """Learned queries + Q-Former + Linear: (B, T, C_enc) or (B, T, K, C_enc) -> (B, Q, d_model).

    The position embedding (if ``max_positions > 0``) is indexed by T, the second axis: for
    video T = frames and K = tokens per frame, so all K tokens of a frame share the frame's
    position; for audio T = windows and there is no K axis.
    """

    def __init__(self, config: QFormerConfig, d_model: int):
        super().__init__()
        if d_model < 1:
            raise ValueError(f"d_model must be >= 1, got {d_model}")
        self.config = config
        std = 0.02  # BERT's initializer range, as BLIP-2 uses for its query tokens
        self.query_tokens = nn.Parameter(torch.randn(1, config.num_queries, config.hidden_size) * std)
        # Unit variance, as the reference's nn.Embedding: the same scale as the LayerNormed
        # features it is added to, so position is as visible to the queries as content.
        self.position_embedding = (
            nn.Parameter(torch.randn(config.max_positions, config.encoder_hidden_size))
            if config.max_positions
            else None
        )
        self.qformer = Blip2QFormerModel(config.to_hf())
        self.projection = nn.Linear(config.hidden_size, d_model)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Read ``features`` with the learned queries.

        Args:
            features: (B, T, C_enc), or (B, T, K, C_enc) with K tokens per position.

        Returns:
            (B, num_queries, d_model) tokens for the decoder.
        """
        if features.dim() not in (3, 4) or features.shape[-1] != self.config.encoder_hidden_size:
            raise ValueError(
                f"QFormerAdapter expects (B, T, {self.config.encoder_hidden_size}) or "
                f"(B, T, K, {self.config.encoder_hidden_size}) features, got {tuple(features.shape)}"
            )
        features = self._add_positions(features)
        B = features.shape[0]
        features = features.reshape(B, -1, features.shape[-1])  # (B, T*K, C_enc)
        queries = self.query_tokens.expand(B, -1, -1)  # (B, Q, hidden)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=features)
        return self.projection(out.last_hidden_state)  # (B, Q, d_model)

    def _add_positions(self, features: torch.Tensor) -> torch.Tensor:
        """Add the learned embedding of position t to every token at index t of axis 1."""
        if self.position_embedding is None:
            return features
        T = features.shape[1]
        if T > self.config.max_positions:
            raise ValueError(
                f"QFormerAdapter got {T} positions but QFormerConfig.max_positions is "
                f"{self.config.max_positions}"
            )
        pos = self.position_embedding[:T].to(features.dtype)  # (T, C_enc)
        if features.dim() == 4:
            pos = pos[:, None, :]  # same embedding for all K tokens of a position
        return features + pos
