"""QFormerAdapter: shapes, position embedding, validation, and that it learns."""

import pytest
import torch

from modalities.qformer import QFormerAdapter, QFormerConfig


def tiny_config(**overrides) -> QFormerConfig:
    fields = {"num_layers": 2, "hidden_size": 32, "num_heads": 4, "intermediate_size": 64,
                  "num_queries": 5, "encoder_hidden_size": 24, "max_positions": 8, "dropout": 0.0}
    return QFormerConfig(**{**fields, **overrides})


def test_output_shape_from_flat_sequence():
    adapter = QFormerAdapter(tiny_config(), d_model=40)
    out = adapter(torch.randn(3, 7, 24))
    assert out.shape == (3, 5, 40)
    assert out.dtype == torch.float32


def test_output_shape_from_grouped_tokens():
    adapter = QFormerAdapter(tiny_config(), d_model=40)
    out = adapter(torch.randn(2, 4, 6, 24))  # 4 frames x 6 tokens each
    assert out.shape == (2, 5, 40)


def test_position_embedding_changes_the_output():
    torch.manual_seed(0)
    adapter = QFormerAdapter(tiny_config(), d_model=16).eval()
    x = torch.randn(1, 4, 24)
    with_positions = adapter(x)
    with torch.no_grad():
        adapter.position_embedding.zero_()
    assert (with_positions - adapter(x)).abs().max() > 1e-3


def test_without_positions_order_does_not_matter():
    torch.manual_seed(0)
    adapter = QFormerAdapter(tiny_config(max_positions=0), d_model=16).eval()
    assert adapter.position_embedding is None
    x = torch.randn(1, 4, 24)
    torch.testing.assert_close(adapter(x), adapter(x[:, [3, 2, 1, 0]]), atol=1e-5, rtol=1e-4)


def test_frame_tokens_share_their_frame_position():
    adapter = QFormerAdapter(tiny_config(), d_model=16)
    x = torch.zeros(1, 3, 2, 24)
    shifted = adapter._add_positions(x)
    torch.testing.assert_close(shifted[0, 1, 0], shifted[0, 1, 1])
    torch.testing.assert_close(shifted[0, 2, 0], adapter.position_embedding[2])


def test_windows_read_only_their_own_positions_and_keep_time_order():
    torch.manual_seed(0)
    adapter = QFormerAdapter(tiny_config(num_queries=2, window=2), d_model=16).eval()
    x = torch.randn(1, 6, 3, 24)  # 6 frames x 3 tokens -> 3 windows of 2 frames
    out = adapter(x)
    assert out.shape == (1, 6, 16)  # 2 queries per window, window after window
    changed = x.clone()
    changed[:, 2:4] += 1.0  # frames of the second window only
    moved = adapter(changed)
    torch.testing.assert_close(moved[:, :2], out[:, :2])
    torch.testing.assert_close(moved[:, 4:], out[:, 4:])
    assert (moved[:, 2:4] - out[:, 2:4]).abs().max() > 1e-3


def test_positions_that_do_not_split_into_windows_are_refused():
    adapter = QFormerAdapter(tiny_config(window=4), d_model=16)
    with pytest.raises(ValueError, match="window"):
        adapter(torch.randn(1, 6, 24))


def test_too_many_positions_names_the_field():
    adapter = QFormerAdapter(tiny_config(max_positions=2), d_model=16)
    with pytest.raises(ValueError, match="max_positions"):
        adapter(torch.randn(1, 3, 24))


def test_wrong_feature_width_is_refused():
    adapter = QFormerAdapter(tiny_config(), d_model=16)
    with pytest.raises(ValueError, match="24"):
        adapter(torch.randn(1, 3, 25))


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"num_layers": 0}, "num_layers"),
        ({"hidden_size": 30, "num_heads": 4}, "num_heads"),
        ({"cross_attention_frequency": 3}, "cross_attention_frequency"),
        ({"max_positions": -1}, "max_positions"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_queries": 0}, "num_queries"),
        ({"window": -1}, "window"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_config(**overrides)


def test_cross_attention_frequency_reaches_hf_layers():
    adapter = QFormerAdapter(tiny_config(num_layers=2, cross_attention_frequency=2), d_model=8)
    layers = adapter.qformer.encoder.layer
    assert [layer.has_cross_attention for layer in layers] == [True, False]


def test_every_part_gets_gradients_and_fits_a_target():
    torch.manual_seed(0)
    adapter = QFormerAdapter(tiny_config(num_layers=1), d_model=8)
    x = torch.randn(4, 3, 24)
    target = torch.randn(4, 5, 8)
    opt = torch.optim.Adam(adapter.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.mse_loss(adapter(x), target)
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert all(p.grad is not None for p in adapter.parameters())
    assert losses[-1] < 0.5 * losses[0]
