"""Session fixtures: one tiny world and one tiny model folder, shared read-only."""

from __future__ import annotations

import pytest
import torch
from tiny_assets import make_model_folder, make_world


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The manifest of a tiny synthetic world (test split)."""
    torch.set_num_threads(2)
    return make_world(tmp_path_factory.mktemp("api-world") / "world")


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory) -> str:
    """Path of an untrained tiny model folder."""
    return make_model_folder(tmp_path_factory.mktemp("api-model") / "model")
