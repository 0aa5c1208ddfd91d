"""Faults: non-finite losses, samples that fail to load in a worker, unwritable run folders."""

from __future__ import annotations

import csv
import logging
import shutil

import lightning as L
import pytest
import torch
from training_fixtures import read_trace, tiny_recipe

from gptground.cli import main
from gptground.training.callbacks import SampleTrace
from gptground.training.module import GroundingLitModule, NonFiniteLossError
from gptground.training.run import train


def _nan_loss_at(monkeypatch, step: int) -> None:
    """Make the loss of training step ``step`` (0-based global step) NaN."""
    forward = GroundingLitModule.forward

    def poisoned(self, batch):
        out = forward(self, batch)
        if self.training and self.global_step == step:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(GroundingLitModule, "forward", poisoned)


def _last_metrics(run_dir: str) -> dict[str, str]:
    """The last logged value of every column of metrics.csv."""
    last: dict[str, str] = {}
    with open(f"{run_dir}/metrics.csv") as f:
        for row in csv.DictReader(f):
            last.update({k: v for k, v in row.items() if v != ""})
    return last


def test_a_nan_loss_stops_the_run_naming_step_and_samples(world, tmp_path, monkeypatch):
    _nan_loss_at(monkeypatch, step=1)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at global step 1 .*samples of this rank's batch: \['"):
        train(tiny_recipe(1, world, tmp_path, "trainer.max_steps=3"))


class _UpdateWatch(L.Callback):
    """Records, per global step, whether the batch changed any parameter."""

    def __init__(self):
        self.changed: dict[int, bool] = {}
        self._before: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        after = list(pl_module.parameters())
        self.changed[trainer.global_step] = any(not torch.equal(a, b) for a, b in zip(self._before, after))


def test_skip_policy_skips_the_nan_batch_and_counts_it(world, tmp_path, monkeypatch):
    _nan_loss_at(monkeypatch, step=1)
    watch = _UpdateWatch()
    recipe = tiny_recipe(1, world, tmp_path / "runs", "trainer.max_steps=3", "trainer.nan_policy=skip")
    run_dir = train(recipe, callbacks=[watch, SampleTrace(str(tmp_path / "trace"))])

    assert watch.changed == {1: True, 2: False, 3: True}  # global_step after each batch
    assert [t["loss"] is None for t in read_trace(tmp_path / "trace")[0]] == [False, True, False]
    assert float(_last_metrics(run_dir)["train/skipped_batches"]) == 1.0


@pytest.fixture
def broken_world(world, tmp_path):
    """A copy of the world whose first stage-1 training image is not an image any more."""
    copy = tmp_path / "world"
    shutil.copytree(world, copy, ignore=shutil.ignore_patterns("features"))
    record = (copy / "annotations/stage1/image_caption.train.jsonl").read_text().splitlines()[0]
    image = copy / __import__("json").loads(record)["image"]
    image.write_bytes(b"\x89PNG\r\n\x1a\n this file was cut short")
    return copy, image


def test_a_sample_that_fails_in_a_worker_is_skipped_named_and_counted(broken_world, tmp_path, caplog):
    copy, image = broken_world
    recipe = tiny_recipe(1, copy, tmp_path / "runs", "trainer.max_steps=3", "data.num_workers=1")
    with caplog.at_level(logging.WARNING, logger="gptground.training.module"):
        run_dir = train(recipe)  # one epoch: 3 steps of 4 draws, each record drawn once

    skipped = [r.getMessage() for r in caplog.records if "skipped sample" in r.getMessage()]
    assert len(skipped) == 1 and image.name in skipped[0]
    last = _last_metrics(run_dir)
    assert float(last["train/skipped_samples"]) == 1.0
    assert int(last["step"]) == 2  # the epoch went on to its last step (0-based)


def test_an_unwritable_run_folder_fails_before_training(world, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the run folder should go")
    built = []
    monkeypatch.setattr("gptground.training.run.build_model", lambda *a: built.append(a))
    with pytest.raises(PermissionError, match="run.output_dir"):
        train(tiny_recipe(1, world, blocker / "runs"))
    assert built == []

    code = main(["run", "recipes/tiny/stage1.yaml", f"data.dir={world}", f"run.output_dir={blocker}/runs"])
    assert code == 2
    assert "is not writable" in capsys.readouterr().err


@pytest.fixture
def world_with_a_cut_video(world, tmp_path):
    """A copy of the world whose first stage-1 training video is cut inside its stream table
    (at the start of the 'minf' box, in the moov box that PyAV writes last): decord cannot
    open it and PyAV's fallback used to raise AttributeError there (issue 17)."""
    copy = tmp_path / "world"
    shutil.copytree(world, copy, ignore=shutil.ignore_patterns("features"))
    record = (copy / "annotations/stage1/video_caption.train.jsonl").read_text().splitlines()[0]
    video = copy / __import__("json").loads(record)["video"]
    data = video.read_bytes()
    assert b"minf" in data
    video.write_bytes(data[: data.index(b"minf")])
    return copy, video


@pytest.mark.parametrize("cache", ["on", "off"])
def test_a_cut_video_is_skipped_and_counted_with_and_without_the_feature_cache(
    world_with_a_cut_video, tmp_path, caplog, cache
):
    copy, video = world_with_a_cut_video
    feature_cache = f"data.feature_cache={copy / 'features'}" if cache == "on" else "data.feature_cache=null"
    recipe = tiny_recipe(1, copy, tmp_path / "runs", "trainer.max_steps=3", feature_cache)
    with caplog.at_level(logging.WARNING):
        run_dir = train(recipe)  # one epoch: 3 steps of 4 draws, each record drawn once

    skipped = [r.getMessage() for r in caplog.records if "skipped sample" in r.getMessage()]
    assert len(skipped) == 1 and video.name in skipped[0]
    if cache == "on":  # the store left the file out, saying which
        assert any("feature store: skipping" in r.getMessage() and video.name in r.getMessage() for r in caplog.records)
    last = _last_metrics(run_dir)
    assert float(last["train/skipped_samples"]) == 1.0
    assert int(last["step"]) == 2  # the epoch went on to its last step (0-based)
def test_the_bad_record_count_continues_after_a_resume(broken_world, tmp_path):
    """The broken image is drawn in step 1; killed after step 2 and resumed, the run still
    reports it (a resume that dropped the counters would report 0)."""
    from training_fixtures import CrashAt

    copy, _ = broken_world
    recipe = tiny_recipe(1, copy, tmp_path / "runs", "trainer.max_steps=4", "trainer.checkpoint.every_n_train_steps=1")
    with pytest.raises(CrashAt.Crash):
        train(recipe, callbacks=[CrashAt(2)])
    recipe.trainer.resume_from = "last"
    run_dir = train(recipe)
    last = _last_metrics(run_dir)
    assert int(last["step"]) == 3
    assert float(last["train/skipped_samples"]) == 1.0
