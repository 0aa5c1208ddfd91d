"""Exact resume: a run killed after step k and resumed from its checkpoint trains the same
batches with the same losses and learning rates as a run that was never interrupted."""

from __future__ import annotations

import pytest
from training_fixtures import CrashAt, read_trace, tiny_recipe

from gptground.training.callbacks import SampleTrace
from gptground.training.run import train

STEPS = 5  # 3 steps per epoch: the runs cross into the second epoch
# Randomness that a resume must reproduce: dropout (global RNG). The tiny recipes cache
# video features, so the video's random crop is not drawn here (test_crop_resume draws it).
RANDOM = (
    "model.modalities.video.adapter_dropout=0.2",
    "model.modalities.audio.qformer_dropout=0.2",
    "model.modalities.video.train_crop_scale=[0.5,1.0]",
    "optim.warmup_ratio=0.4",
    "trainer.checkpoint.every_n_train_steps=1",
    f"trainer.max_steps={STEPS}",
)


def _steps(trace_dir):
    """(step, sample ids, loss, lr) per step of rank 0."""
    return [(t["step"], t["sample_ids"], t["loss"], t["lr"]) for t in read_trace(trace_dir)[0]]


@pytest.fixture(scope="module")
def uninterrupted(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    train(tiny_recipe(1, world, out / "runs", *RANDOM), callbacks=[SampleTrace(str(out / "trace"))])
    return _steps(out / "trace")


@pytest.mark.parametrize(
    ("crash_after", "workers"),
    [(2, 0), (3, 1)],
    ids=["mid-epoch", "end-of-epoch-with-a-worker"],
)
def test_resumed_run_repeats_the_uninterrupted_one(world, tmp_path, uninterrupted, crash_after, workers):
    runs = tmp_path / "runs"
    recipe = tiny_recipe(1, world, runs, *RANDOM, f"data.num_workers={workers}")
    with pytest.raises(CrashAt.Crash):
        train(recipe, callbacks=[CrashAt(crash_after), SampleTrace(str(tmp_path / "before"))])
    recipe.trainer.resume_from = "last"
    run_dir = train(recipe, callbacks=[SampleTrace(str(tmp_path / "after"))])

    assert run_dir.endswith("version_1")  # the resumed run writes a new version folder
    before, after = _steps(tmp_path / "before"), _steps(tmp_path / "after")
    assert [s[0] for s in before] == list(range(1, crash_after + 1))
    assert [s[0] for s in after] == list(range(crash_after + 1, STEPS + 1))
    assert before + after == uninterrupted


def test_uninterrupted_reference_is_random(uninterrupted):
    """The comparison above is only meaningful if the steps differ and lr moves."""
    losses = [s[2] for s in uninterrupted]
    assert len(set(losses)) == len(losses)
    assert len({s[3] for s in uninterrupted}) > 2
