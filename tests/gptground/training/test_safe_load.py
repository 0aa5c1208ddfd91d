"""Fault 1 of issue 17: a checkpoint is data, never code, wherever it comes from."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest
import torch
from training_fixtures import tiny_recipe

from gptground.training.checkpoint_io import AtomicCheckpointIO
from gptground.training.safe_load import FORCE_UNSAFE_ENV, UnsafeCheckpointError, load_weights_only
from gptground.training.run import train


class _Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def poisoned(tmp_path):
    """(checkpoint path, marker path): a checkpoint whose unpickling would create the marker."""
    marker = tmp_path / "code-ran"
    ckpt = tmp_path / "served" / "last.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {}, "global_step": 3, "payload": _Payload(str(marker))}, ckpt)
    return ckpt, marker


@pytest.fixture
def served(poisoned):
    """``http://127.0.0.1:PORT/last.ckpt`` serving the poisoned checkpoint from a thread."""
    ckpt, _ = poisoned
    handler = functools.partial(_QuietHandler, directory=str(ckpt.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/last.ckpt"
    server.shutdown()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        """Write nothing: no request lines in the test output."""


@pytest.fixture(autouse=True)
def _unsafe_env(monkeypatch, tmp_path):
    """The variable that made torch.load unpickle anything; torch.hub's cache kept in tmp."""
    monkeypatch.setenv(FORCE_UNSAFE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.mark.parametrize("where", ["local", "url"])
def test_resume_refuses_a_checkpoint_that_runs_code(world, tmp_path, poisoned, served, where):
    ckpt, marker = poisoned
    source = str(ckpt) if where == "local" else served
    recipe = tiny_recipe(1, world, tmp_path / "runs", "trainer.max_steps=1", f"trainer.resume_from={source}")
    with pytest.raises(UnsafeCheckpointError, match=r"asks for the Python global '(io|builtins)\.open'") as e:
        train(recipe)
    assert source in str(e.value)
    assert not marker.exists()


def test_checkpoint_io_ignores_a_weights_only_false_request(poisoned):
    ckpt, marker = poisoned
    with pytest.raises(UnsafeCheckpointError, match="open"):
        AtomicCheckpointIO().load_checkpoint(ckpt, weights_only=False)
    assert not marker.exists()


def test_a_plain_checkpoint_loads(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "counts": {"skipped_batches": 1}, "name": "x"}, path)
    loaded = load_weights_only(path)
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2)) and loaded["counts"] == {"skipped_batches": 1}


def test_the_fsdp_whole_file_path_is_checked_before_lightning_unpickles_it(poisoned, monkeypatch):
    """Lightning's FSDP strategy reads a whole-model .ckpt with its own (unrestricted)
    unpickler; ours checks the file's globals first."""
    from gptground.training.fsdp_checkpoint import ShardedFSDPStrategy

    ckpt, marker = poisoned
    strategy = ShardedFSDPStrategy.__new__(ShardedFSDPStrategy)  # only load_checkpoint's checks run
    monkeypatch.setattr(ShardedFSDPStrategy, "broadcast", lambda self, obj, src=0: obj)
    with pytest.raises(UnsafeCheckpointError, match=r"'(io|builtins)\.open'"):
        strategy.load_checkpoint(ckpt)
    with pytest.raises(ValueError, match="local path"):
        strategy.load_checkpoint("http://127.0.0.1:1/last.ckpt")
    assert not marker.exists()


def test_our_checkpoints_hold_only_what_weights_only_loading_allows(world, tmp_path):
    """Everything a run puts in last.ckpt (Lightning's loops and callback states, the best
    score, our counters, skip window, RNG states, frozen fingerprint) is plain data."""
    recipe = tiny_recipe(1, world, tmp_path, "trainer.max_steps=2", "trainer.val_check_interval=2",
                         "trainer.nan_policy=skip")
    run_dir = train(recipe)
    for ckpt in (tmp_path / recipe.run.name).glob("version_*/checkpoints/*.ckpt"):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt)) == [], ckpt
    loaded = load_weights_only(f"{run_dir}/checkpoints/last.ckpt")
    assert {"gptground_counts", "gptground_nonfinite", "gptground_frozen", "callbacks", "loops"} <= loaded.keys()
