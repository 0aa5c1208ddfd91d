"""Shared setup for the modality tests: two CPU threads, and no model hub."""

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """No test may reach a model hub: hub ids that are not local folders must fail at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
