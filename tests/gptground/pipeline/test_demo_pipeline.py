"""A very small version of the demo pipeline, end to end: synth -> 3 stages -> eval."""

import csv
import json
from pathlib import Path

import pytest

from gptground.config import RecipeError
from gptground.pipeline import load_pipeline, run_pipeline

RECIPES = Path(__file__).resolve().parents[3] / "recipes"

SMALL_MODEL = [
    "model.decoder.tiny.hidden_size=32",
    "model.decoder.tiny.num_layers=1",
    "model.decoder.tiny.num_heads=2",
    "model.decoder.tiny.intermediate_size=64",
    "model.modalities.video.num_frames=4",
    "data.batch_size=4",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]


def write_pipeline(tmp_path: Path) -> str:
    stages = "\n".join(
        f"    - {{recipe: {RECIPES / 'tiny' / f'stage{i}.yaml'}, steps: {steps}, overrides: [optim.lr=3e-3]}}"
        for i, steps in ((1, 6), (2, 12), (3, 4))
    )
    overrides = "\n".join(f"    - {o}" for o in SMALL_MODEL)
    tasks = "\n".join(
        f"      - {{task: {t}, data: annotations/stage2/{t}.test.jsonl}}" for t in ("rec", "video_tg", "audio_tg", "sound_loc")
    )
    text = f"""pipeline:
  name: small
  output_dir: {tmp_path / 'runs'}
  data_dir: {tmp_path / 'world'}
  scale: 1.0
  synth:
    seed: 1
    scale: 0.01
    workers: 1
    val: {{image_caption: 2, rec: 2, video_tg: 2, image_dialogue: 2}}
    test: {{rec: 4, grounded_caption: 0, video_tg: 4, audio_tg: 4, sound_loc: 4}}
  stages:
{stages}
  overrides:
{overrides}
  eval:
    tasks:
{tasks}
    limit: 4
    batch_size: 4
    max_new_tokens: 12
    pictures: 1
"""
    path = tmp_path / "small.yaml"
    path.write_text(text)
    return str(path)


def losses(metrics_csv: Path) -> list[float]:
    with open(metrics_csv) as f:
        return [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]


def test_small_pipeline_learns_and_writes_every_output(tmp_path):
    run_dir = Path(run_pipeline(write_pipeline(tmp_path)))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"rec", "video_tg", "audio_tg", "sound_loc"}
    assert set(metrics["rec"]) >= {"acc@0.5", "n", "chance"} and metrics["rec"]["n"] == 4
    assert set(metrics["video_tg"]) >= {"r1@0.3", "r1@0.5", "r1@0.7", "miou", "chance"}
    for task in metrics:
        assert (run_dir / "eval" / task / "predictions.jsonl").exists()
        assert len(list((run_dir / "eval" / task / "pictures").glob("*.png"))) == 1
    for stage in ("stage1", "stage2", "stage3"):
        stage_dir = next((run_dir / stage).glob("version_*"))
        assert (stage_dir / "model" / "model.safetensors").exists()
        assert (stage_dir / "recipe.yaml").exists()
    stage2 = losses(next((run_dir / "stage2").glob("version_*")) / "metrics.csv")
    assert sum(stage2[-3:]) / 3 < sum(stage2[:3]) / 3  # the loss falls


def test_pipeline_errors_name_the_key(tmp_path):
    path = write_pipeline(tmp_path)
    with pytest.raises(RecipeError, match="pipeline.scal"):
        load_pipeline(path, ["pipeline.scal=2"])
    with pytest.raises(RecipeError, match="pipeline.scale"):
        load_pipeline(path, ["pipeline.scale=-1"])
