"""The video's random training crop is really drawn (feature cache off) and continues exactly
after a kill and resume (issue 17: the resume test ran on cached features, so the crop it
meant to check was never drawn)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from training_fixtures import CrashAt, tiny_recipe

from gptground.training.run import train
from modalities.video import VideoModality

# Batches of 2: an epoch is 8 steps, two of them video batches (4 clips). The kill falls
# between the two, so a worker restarted by the resume must draw the second batch's crops
# as the uninterrupted worker did after drawing the first's.
STEPS = 8
CROPPING = (
    "data.feature_cache=null",  # else the video is encoded once, uncropped, and cached
    "data.batch_size=2",
    "model.modalities.video.train_crop_scale=[0.3,0.6]",  # never the whole frame
    "model.modalities.video.adapter_dropout=0.2",
    "trainer.checkpoint.every_n_train_steps=1",
    f"trainer.max_steps={STEPS}",
)


class MediaTrace(L.Callback):
    """Per global step: sample ids, the loss, and the exact video pixels the step trained on."""

    def __init__(self):
        self.steps: dict[int, dict] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        assert "video" not in batch["encoded"]  # pixels, not cached features
        video = batch["media"].get("video")
        self.steps[trainer.global_step] = {
            "ids": list(batch["sample_ids"]),
            "loss": float(outputs["loss"]),
            "video": None if video is None else video.detach().clone(),
        }


@pytest.fixture
def crop_log(tmp_path, monkeypatch):
    """A file with one line (kept height, width, frame height, width) per crop drawn, from
    any process (DataLoader workers inherit the patch)."""
    path = tmp_path / "crops.jsonl"
    crop = VideoModality._random_crop

    def logged(self, frames):
        out = crop(self, frames)
        with open(path, "a") as f:
            f.write(json.dumps([*out.shape[-2:], *frames.shape[-2:]]) + "\n")
        return out

    monkeypatch.setattr(VideoModality, "_random_crop", logged)
    return path


@pytest.mark.parametrize("workers", [1, pytest.param(0, marks=pytest.mark.slow)])  # ~20 s each
def test_the_crop_is_drawn_and_continues_exactly_after_a_resume(world, tmp_path, crop_log, workers):
    reference = MediaTrace()
    train(tiny_recipe(1, world, tmp_path / "a", *CROPPING, f"data.num_workers={workers}"), callbacks=[reference])
    crops = [json.loads(line) for line in crop_log.read_text().splitlines()]
    assert len(crops) == 4  # the 4 clips of the epoch, each drawn once
    assert all(h * w < fh * fw for h, w, fh, fw in crops)  # every clip really cropped
    assert len({tuple(c) for c in crops}) > 1  # a box of its own per clip, not one repeated
    video_steps = [s for s, v in reference.steps.items() if v["video"] is not None]
    assert len(video_steps) == 2 and video_steps[1] > video_steps[0] + 1
    assert not torch.equal(reference.steps[video_steps[0]]["video"], reference.steps[video_steps[1]]["video"])

    kill = video_steps[0]  # after the first video batch, before the second
    recipe = tiny_recipe(1, world, tmp_path / "b", *CROPPING, f"data.num_workers={workers}")
    before, after = MediaTrace(), MediaTrace()
    with pytest.raises(CrashAt.Crash):
        train(recipe, callbacks=[CrashAt(kill), before])
    recipe.trainer.resume_from = "last"
    train(recipe, callbacks=[after])

    assert sorted(before.steps) == list(range(1, kill + 1))
    assert sorted(after.steps) == list(range(kill + 1, STEPS + 1))
    resumed = {**before.steps, **after.steps}
    for step, expected in reference.steps.items():
        got = resumed[step]
        assert got["ids"] == expected["ids"] and got["loss"] == expected["loss"], step
        if expected["video"] is not None:
            assert torch.equal(got["video"], expected["video"]), f"step {step}: other crops after the resume"
