"""Per-channel standardisation of frozen encoder features, with statistics learnt in training.

Some frozen features are badly conditioned for the adapter that reads them: the tiny
random ImageBind audio branch returns window embeddings that are 98 % one shared vector,
and what tells one pitch from another is 0.3 % of their energy. A Q-Former trained
directly on those raw features to name the pitch reaches 0.62 test accuracy in 600 steps;
on standardised features it reaches 0.78 after 100 steps and 0.93 after 600.

Unlike BatchNorm, the statistics, not the batch's, normalise in training too. So the
training and evaluation inputs are the same function of the features. Batches drawn
from one source at a time would otherwise standardise each source on its own scale.
The statistics are a running mean and variance over every training vector seen (Chan et
al.'s parallel update, computed in float64), kept as buffers and saved with the model.
"""

from __future__ import annotations

import torch
from torch import nn


class FeatureStandardizer(nn.Module):
    """(..., C) -> (..., C): subtract the per-channel mean, divide by the standard deviation.

    The statistics are updated by ``forward(x, update=True)`` with every vector of ``x``
    (all leading axes pooled), before normalising. They start at mean 0 and variance 1, so
    until the first update the map is the identity.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        # An integer count is never cast by ``module.to(dtype)``; mean and variance follow the
        # model's float dtype like any buffer.
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("mean", torch.zeros(num_channels))
        self.register_buffer("var", torch.ones(num_channels))

    def forward(self, x: torch.Tensor, update: bool = False) -> torch.Tensor:
        if x.shape[-1] != self.mean.numel():
            raise ValueError(f"FeatureStandardizer expects {self.mean.numel()} channels, got {tuple(x.shape)}")
        if update:
            self._update(x.detach().reshape(-1, x.shape[-1]).double())
        std = self.var.sqrt().clamp_min(self.eps)
        return (x - self.mean.to(x.dtype)) / std.to(x.dtype)

    @torch.no_grad()
    def _update(self, rows: torch.Tensor) -> None:
        """Merge the mean and variance of ``rows`` (N, C) into the running ones."""
        # Tensor arithmetic only: no host-device sync on an accelerator.
        seen, n = self.count.double(), rows.shape[0]
        total = seen + n
        mean, var = self.mean.double(), self.var.double()
        batch_mean = rows.mean(0)
        delta = batch_mean - mean
        sq_dev = var * seen + ((rows - batch_mean) ** 2).sum(0) + delta**2 * (seen * n / total)
        self.mean.copy_(mean + delta * (n / total))
        self.var.copy_(sq_dev / total)
        self.count += n
