"""The Modality contract's shared steps."""

import torch

from modalities import build_modality
from modalities.audio import AudioConfig


def test_a_bf16_encoder_takes_fp32_inputs():
    """bf16-true builds every weight in bf16; transforms still give fp32 spectrograms."""
    config = AudioConfig.tiny()
    modality = build_modality("audio", config, d_model=16).to(torch.bfloat16)
    x = torch.randn(2, config.num_windows, 1, config.num_mel_bins, config.target_frames)  # as transform makes it
    features = modality.encode(x)
    assert features.dtype == torch.bfloat16 and torch.isfinite(features.float()).all()
