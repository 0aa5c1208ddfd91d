"""One tiny synthetic world per test session, shared read-only by the training tests."""

from __future__ import annotations

import pytest
import torch
from training_fixtures import world_config

from gptground.synth import generate_world


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Folder of a tiny synthetic world (every stage's tasks, train and val splits)."""
    root = tmp_path_factory.mktemp("training-world") / "world"
    generate_world(root, world_config(), progress=False)
    return root


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)
