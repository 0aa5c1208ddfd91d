"""The Modality contract's shared steps."""

import torch

from modalities import build_modality


def test_a_bf16_encoder_takes_fp32_inputs():
    """bf16-true builds every weight in bf16; transforms still give fp32 pixels."""
    tiny = {"patch_size": 8, "hidden_size": 16, "num_layers": 2, "num_heads": 2}
    modality = build_modality("image", {"encoder": "tiny", "image_size": 32, "tiny": tiny}, d_model=16)
    modality.to(torch.bfloat16)
    x = torch.rand(2, 3, 32, 32)
    features = modality.encode(x)
    assert features.dtype == torch.bfloat16 and torch.isfinite(features.float()).all()
