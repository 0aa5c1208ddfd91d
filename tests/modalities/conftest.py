"""Shared setup for the modality tests: two CPU threads, as on the project's test machines."""

import os

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """No test may reach a model hub: hub ids that are not local folders must fail at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(os.environ, "HF_HUB_OFFLINE", "1")
