"""FeatureStandardizer: running statistics, identity before training, frozen when asked."""

import pytest
import torch

from modalities.audio import AudioConfig, AudioModality
from modalities.qformer import QFormerAdapter, QFormerConfig
from modalities.standardize import FeatureStandardizer


def shifted_features(shape=(12, 5, 3)) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(*shape) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([3.0, -2.0, 7.0])


def test_identity_until_the_first_update():
    x = shifted_features()
    assert torch.equal(FeatureStandardizer(3)(x), x)


def test_updates_in_chunks_give_the_statistics_of_all_vectors():
    x = shifted_features()
    norm = FeatureStandardizer(3)
    for chunk in x.split([5, 1, 6]):  # uneven batches
        norm(chunk, update=True)
    rows = x.reshape(-1, 3)
    assert int(norm.count) == rows.shape[0]
    torch.testing.assert_close(norm.mean, rows.mean(0))
    torch.testing.assert_close(norm.var, rows.var(0, unbiased=False))
    out = norm(x).reshape(-1, 3)
    torch.testing.assert_close(out.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(3))


def test_batch_is_normalised_with_the_running_statistics_not_its_own():
    x = shifted_features()
    norm = FeatureStandardizer(3)
    norm(x, update=True)
    part = x[:2] + 10.0  # a batch from elsewhere: its own statistics would hide the shift
    assert norm(part).mean() > 1.0
    assert norm(part, update=True).mean() > 1.0  # merged into 60 vectors, not replacing them


def test_constant_channel_is_not_divided_by_zero():
    x = torch.ones(4, 2)
    norm = FeatureStandardizer(2)
    out = norm(x, update=True)
    assert torch.isfinite(out).all() and torch.equal(out, torch.zeros(4, 2))


def test_wrong_width_is_refused():
    with pytest.raises(ValueError, match="3 channels"):
        FeatureStandardizer(3)(torch.randn(2, 4))


def adapter_config(**overrides) -> QFormerConfig:
    fields = {"num_layers": 1, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32,
              "num_queries": 2, "encoder_hidden_size": 3, "max_positions": 8, "dropout": 0.0,
              "standardize_inputs": True}
    return QFormerConfig(**{**fields, **overrides})


def test_adapter_learns_statistics_only_while_training_and_trainable():
    x = shifted_features()
    adapter = QFormerAdapter(adapter_config(), d_model=8)
    adapter.eval()(x)
    assert int(adapter.standardize.count) == 0
    adapter.train()(x)
    assert int(adapter.standardize.count) == x[..., 0].numel()
    adapter.requires_grad_(False)  # a frozen adapter keeps its statistics as its weights
    adapter(x)
    assert int(adapter.standardize.count) == x[..., 0].numel()


def test_statistics_are_saved_with_the_adapter():
    adapter = QFormerAdapter(adapter_config(), d_model=8)
    adapter(shifted_features())
    state = adapter.state_dict()
    assert {"standardize.count", "standardize.mean", "standardize.var"} <= set(state)
    restored = QFormerAdapter(adapter_config(), d_model=8)
    restored.load_state_dict(state)
    x = shifted_features()
    torch.testing.assert_close(restored.eval()(x), adapter.eval()(x))


def test_off_by_default():
    assert QFormerAdapter(adapter_config(standardize_inputs=False), d_model=8).standardize is None


def test_audio_modality_standardizes_its_window_embeddings_when_asked():
    assert AudioModality(AudioConfig.tiny(), d_model=8).adapter.standardize is None
    audio = AudioModality(AudioConfig.tiny(standardize_features=True), d_model=8)
    assert audio.adapter.standardize.mean.numel() == audio.encoder.dims.out_dim
