"""Q-Formers: a trainable adapter, and the frozen BLIP-2 Q-Former loaded from checkpoints.

A Q-Former is a fixed number of learned queries that read a feature sequence.

Used by the video modality (64 queries over F frames x 32 frame tokens) and the audio
modality (8 queries over 3 window embeddings). The transformer is transformers'
``Blip2QFormerModel`` (BERT-shaped layers whose query stream cross-attends to the encoder
features); this module adds what BLIP-2 keeps outside it: the learned query tokens, an
optional learned position embedding on the *input* sequence (positions are frames or audio
windows, so the Q-Former knows their order) and a Linear projection into the decoder width.

``BlipQFormer`` is BLIP-2's own Q-Former (vision LayerNorm + 32 query tokens + Q-Former), used
frozen per video frame; ``build_blip2_qformer`` makes it tiny or from a LAVIS ``.pth`` /
``.safetensors`` file or a Hugging Face BLIP-2 folder or hub id.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from transformers import Blip2Config, Blip2QFormerConfig, Blip2QFormerModel

from modalities.checkpoints import (
    TINY,
    load_state_dict_file,
    load_strict,
    map_lavis_blip2_keys,
    read_hf_weights,
    resolve_pretrained,
)
from modalities.errors import CheckpointFormatError
from modalities.standardize import FeatureStandardizer


@dataclass
class QFormerConfig:
    """Shape of a Q-Former adapter (defaults: GroundingGPT's 2-layer video Q-Former)."""

    num_layers: int = 2  # transformer layers
    hidden_size: int = 768  # width of the queries (BERT-base: 768)
    num_heads: int = 12  # attention heads; must divide hidden_size
    intermediate_size: int = 3072  # width of each layer's feed-forward block
    num_queries: int = 64  # learned query tokens = output tokens per window (per item if window=0)
    encoder_hidden_size: int = 768  # channel width C_enc of the features it reads
    max_positions: int = 64  # length of the learned input position embedding; 0 = none
    cross_attention_frequency: int = 1  # a cross-attention block every this many layers
    dropout: float = 0.1  # dropout on hidden states and attention probabilities (train only)
    init_std: float = 0.02  # std of random initial weights (BERT's 0.02; see TinyFrameQFormerShape)
    # Positions read together: 0 = all (one set of queries over the whole input, BLIP-2 /
    # GroundingGPT); W > 0 = the queries read each run of W positions on its own, and the
    # outputs follow the input's order (TimeChat's sliding video Q-Former, stride = W).
    window: int = 0
    # Standardise each input channel with statistics learnt in training (FeatureStandardizer)
    # before the position embedding is added; for badly conditioned frozen features.
    standardize_inputs: bool = False

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
        if self.window < 0:
            raise ValueError(f"QFormerConfig.window must be >= 0, got {self.window}")
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
            initializer_range=self.init_std,
        )


class QFormerAdapter(nn.Module):
    """Learned queries + Q-Former + Linear: (B, T, C_enc) or (B, T, K, C_enc) -> (B, Q', d_model).

    The position embedding (if ``max_positions > 0``) is indexed by T, the second axis: for
    video T = frames and K = tokens per frame, so all K tokens of a frame share the frame's
    position; for audio T = windows and there is no K axis. Q' = num_queries, or with a
    ``window`` W, num_queries * T / W: each window's queries, window after window.
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
        self.standardize = FeatureStandardizer(config.encoder_hidden_size) if config.standardize_inputs else None
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
        if self.standardize is not None:
            # A frozen adapter keeps its statistics, as it keeps its weights.
            features = self.standardize(features, update=self.training and self.projection.weight.requires_grad)
        features = self._add_positions(features)
        B, T = features.shape[:2]
        W = self.config.window or T
        if T % W:
            raise ValueError(f"QFormerAdapter: {T} positions do not split into windows of {W} (QFormerConfig.window)")
        features = features.reshape(B * (T // W), -1, features.shape[-1])  # (B*T/W, W*K, C_enc)
        queries = self.query_tokens.expand(features.shape[0], -1, -1)  # (B*T/W, Q, hidden)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=features).last_hidden_state
        return self.projection(out.reshape(B, -1, out.shape[-1]))  # (B, Q*T/W, d_model)

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


class BlipQFormer(nn.Module):
    """BLIP-2's Q-Former as a feature reader: (N, T, C_enc) -> (N, num_queries, hidden).

    ``vision_norm`` is BLIP-2's LayerNorm on the image features (LAVIS ``ln_vision``; the
    vision ``post_layernorm`` in transformers' BLIP-2), applied before the queries read them.
    """

    def __init__(self, config: QFormerConfig, norm_eps: float = 1e-5):
        super().__init__()
        self.config = config
        self.vision_norm = nn.LayerNorm(config.encoder_hidden_size, eps=norm_eps)
        self.query_tokens = nn.Parameter(torch.randn(1, config.num_queries, config.hidden_size) * 0.02)
        self.qformer = Blip2QFormerModel(config.to_hf())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, T, C_enc) image tokens -> (N, num_queries, hidden) query outputs."""
        features = self.vision_norm(features)
        queries = self.query_tokens.expand(features.shape[0], -1, -1)
        return self.qformer(query_embeds=queries, encoder_hidden_states=features).last_hidden_state


def blip_qformer_record(model: BlipQFormer) -> dict:
    """The shape of a BLIP-2 Q-Former as JSON data (its QFormerConfig and LayerNorm eps)."""
    return {"config": dataclasses.asdict(model.config), "norm_eps": model.vision_norm.eps}


def blip_qformer_from_record(record: Mapping) -> BlipQFormer:
    """A BLIP-2 Q-Former of the recorded shape with untrained weights; reads no file."""
    return BlipQFormer(QFormerConfig(**dict(record["config"])), norm_eps=float(record["norm_eps"]))


def build_blip2_qformer(location: str, recipe_key: str, tiny: QFormerConfig) -> BlipQFormer:
    """A BLIP-2 Q-Former: tiny with random weights, or loaded from a checkpoint.

    Args:
        location: ``"tiny"``; a LAVIS BLIP-2 ``.pth``/``.safetensors`` file (e.g.
            ``blip2_pretrained_vitL.pth``); or a Hugging Face BLIP-2 folder or hub id.
        recipe_key: the recipe key that set ``location``, for error messages.
        tiny: the shape of the tiny build (ignored for checkpoints, whose shape is read
            from the checkpoint).
    """
    if location == TINY:
        return BlipQFormer(tiny)
    path = resolve_pretrained(location, recipe_key)
    if os.path.isfile(path):
        return _from_lavis_file(path, recipe_key)
    return _from_hf_blip2(path, recipe_key)


def _from_lavis_file(path: str, recipe_key: str) -> BlipQFormer:
    state = map_lavis_blip2_keys(load_state_dict_file(path, recipe_key), path, recipe_key)
    model = BlipQFormer(_lavis_shape(state, path, recipe_key))
    load_strict(model, state, path, recipe_key)
    return model


def _lavis_shape(state: dict[str, torch.Tensor], path: str, recipe_key: str) -> QFormerConfig:
    """The Q-Former shape implied by a mapped LAVIS state dict.

    Heads are not stored in a checkpoint: BLIP-2's Q-Former is BERT-base, whose heads are
    64 wide, so heads = hidden / 64.
    """
    layers = {int(m.group(1)) for k in state if (m := re.match(r"qformer\.encoder\.layer\.(\d+)\.", k))}
    cross = sorted({int(m.group(1)) for k in state
                    if (m := re.match(r"qformer\.encoder\.layer\.(\d+)\.crossattention\.", k))})
    if "query_tokens" not in state or not layers or not cross:
        raise CheckpointFormatError(path, recipe_key, "no BLIP-2 Q-Former inside (query_tokens, Qformer.bert.encoder.layer.*)")
    _, num_queries, hidden = state["query_tokens"].shape
    return QFormerConfig(
        num_layers=max(layers) + 1,
        hidden_size=hidden,
        num_heads=max(1, hidden // 64),
        intermediate_size=state["qformer.encoder.layer.0.intermediate_query.dense.weight"].shape[0],
        num_queries=num_queries,
        encoder_hidden_size=state[f"qformer.encoder.layer.{cross[0]}.crossattention.attention.key.weight"].shape[1],
        max_positions=0,
        cross_attention_frequency=cross[1] - cross[0] if len(cross) > 1 else max(layers) + 1,
    )


def _from_hf_blip2(path: str, recipe_key: str) -> BlipQFormer:
    """From a transformers BLIP-2 folder (any Blip2* model's ``save_pretrained``) or hub id."""
    if not os.path.isdir(path):  # a reachable hub id: fetch configs and weights only
        from huggingface_hub import snapshot_download

        path = snapshot_download(path, allow_patterns=["*.json", "*.safetensors"])
    blip2 = Blip2Config.from_pretrained(path, local_files_only=True)
    qf = blip2.qformer_config
    config = QFormerConfig(
        num_layers=qf.num_hidden_layers, hidden_size=qf.hidden_size, num_heads=qf.num_attention_heads,
        intermediate_size=qf.intermediate_size, num_queries=blip2.num_query_tokens,
        encoder_hidden_size=qf.encoder_hidden_size, max_positions=0,
        cross_attention_frequency=qf.cross_attention_frequency,
    )
    model = BlipQFormer(config, norm_eps=blip2.vision_config.layer_norm_eps)
    raw = read_hf_weights(path, ("qformer.", "query_tokens", "vision_model.post_layernorm."), recipe_key)
    text_branch = re.compile(r"^qformer\.encoder\.layer\.\d+\.(intermediate|output)\.")
    state = {
        k.replace("vision_model.post_layernorm.", "vision_norm."): v
        for k, v in raw.items()
        if not text_branch.match(k)
    }
    load_strict(model, state, path, recipe_key)
    return model
