"""A tiny synthetic world, generated once per test session and shared read-only."""

from __future__ import annotations

import pytest
from synth_fixtures import tiny_config

from gptground.synth import generate_world


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """(manifest, config) of a tiny world."""
    config = tiny_config()
    manifest = generate_world(tmp_path_factory.mktemp("world") / "w", config, progress=False)
    return manifest, config
