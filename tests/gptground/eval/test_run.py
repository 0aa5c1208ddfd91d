"""Evaluation runs: scoreable outputs, the protocol's de-normalisation, 1 vs 2 processes, W&B."""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))  # the tiny world/model helpers
from tiny_assets import make_model_folder, make_world

from gptground.data.readers import Record, RecordError, read_records
from gptground.eval import run
from gptground.eval.benchmarks import MomentItem, RecItem
from gptground.eval.cli import add_eval_arguments, parse_roots, run_eval
from gptground.eval.generate import Answer
from gptground.eval.queries import items_from_benchmark, items_from_records
from gptground.eval.score import score_file
from gptground.eval.wandb_table import prediction_picture
from gptground.grounding import Box, Span
from gptground.model.folder import resolve_text_settings

SCORE_TASK = {"rec": "rec", "sound_loc": "rec", "video_tg": "tvg", "audio_tg": "tvg"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(2)
    return make_world(tmp_path_factory.mktemp("eval-world") / "world")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> str:
    return make_model_folder(tmp_path_factory.mktemp("eval-model") / "model")


def outputs(folder: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((folder / "metrics.json").read_text())
    lines = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    return metrics, lines


def oracle(world, task: str, wrong: set[int] = frozenset()):
    """answer_queries stand-in that answers with each record's true text (garbage at ``wrong``)."""
    records = read_records(str(world.path(task, "test")))
    truth = {r.id: r.conversations[-1].value for r in records}
    order = [r.id for r in records]

    def answer(model, processor, queries, *args, **kwargs):
        return [Answer(q.id, "no idea" if order.index(q.id) in wrong else truth[q.id], {}) for q in queries]

    return answer


@pytest.mark.parametrize("task", ["rec", "video_tg", "audio_tg", "sound_loc"])
def test_true_answers_score_perfectly_and_the_file_rescores_the_same(world, model_folder, tmp_path, monkeypatch, task):
    monkeypatch.setattr(run, "answer_queries", oracle(world, task))
    metrics = run.evaluate_file(
        model_folder,
        str(world.path(task, "test")),
        task,
        str(tmp_path),
        roots=parse_roots([str(world.root)]),
        accelerator="cpu",
    )
    saved, lines = outputs(tmp_path)
    assert saved == metrics == score_file(tmp_path / "predictions.jsonl", SCORE_TASK[task])
    assert metrics["parse_failures"] == 0
    assert metrics.get("acc@0.5", metrics.get("r1@0.7")) == 1.0  # boxes: original-size, unpadded pixels
    assert all(line["iou"] > 0.9 and line["format"] == "groundinggpt" for line in lines)


def test_lines_hold_prompt_text_parsed_values_and_truth(world, model_folder, tmp_path):
    metrics = run.evaluate_file(
        model_folder,
        str(world.path("rec", "test")),
        "rec",
        str(tmp_path),
        roots={"image": str(world.root)},
        max_new_tokens=6,
        accelerator="cpu",
    )
    _, lines = outputs(tmp_path)
    records = read_records(str(world.path("rec", "test")))
    assert [line["id"] for line in lines] == [r.id for r in records]
    first = lines[0]
    assert first["prompt"] == records[0].conversations[0].value
    assert first["answer"] == records[0].extra["target"]["boxes"]
    assert first["image_size"] == records[0].extra["target"]["image_size"]
    assert isinstance(first["prediction"], str) and isinstance(first["boxes"], list)
    assert metrics["n"] == len(records) and metrics == score_file(tmp_path / "predictions.jsonl", "rec")


def test_one_and_two_processes_give_identical_files(world, model_folder, tmp_path):
    data = str(world.path("rec", "test"))  # 5 items: the two shards differ in size
    common = {"roots": {"image": str(world.root)}, "batch_size": 2, "max_new_tokens": 6, "accelerator": "cpu"}
    single = run.evaluate_file(model_folder, data, "rec", str(tmp_path / "one"), devices=1, **common)
    double = run.evaluate_file(
        model_folder, data, "rec", str(tmp_path / "two"), devices=2, strategy="ddp_fork", **common
    )
    assert single == double
    assert (tmp_path / "one/metrics.json").read_bytes() == (tmp_path / "two/metrics.json").read_bytes()
    assert (tmp_path / "one/predictions.jsonl").read_bytes() == (tmp_path / "two/predictions.jsonl").read_bytes()


def test_sharded_metrics_count_every_item_once(world, model_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(run, "answer_queries", oracle(world, "rec", wrong={1, 4}))  # forked ranks inherit it
    common = {"roots": {"image": str(world.root)}, "accelerator": "cpu"}
    data = str(world.path("rec", "test"))
    single = run.evaluate_file(model_folder, data, "rec", str(tmp_path / "one"), **common)
    double = run.evaluate_file(
        model_folder, data, "rec", str(tmp_path / "two"), devices=2, strategy="ddp_fork", **common
    )
    assert single == double == {"acc@0.5": 0.6, "n": 5, "parse_failures": 2, "media_errors": 0}


def test_wandb_offline_run_holds_the_predictions_table(world, model_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run.evaluate_file(
        model_folder,
        str(world.path("video_tg", "test")),
        "video_tg",
        str(tmp_path),
        roots={"video": str(world.root)},
        max_new_tokens=4,
        accelerator="cpu",
        wandb=True,
        wandb_rows=2,
    )
    runs = glob.glob(str(tmp_path / "wandb/offline-run-*"))
    assert len(runs) == 1
    (table,) = glob.glob(f"{runs[0]}/files/media/table/eval/predictions_*.table.json")
    content = json.loads(Path(table).read_text())
    assert content["columns"][-1] == "picture" and len(content["data"]) == 2


@pytest.mark.parametrize("task", ["rec", "audio_tg"])
def test_each_prediction_has_a_picture(world, task):
    items = items_from_records(read_records(str(world.path(task, "test"))), task, parse_roots([str(world.root)]))
    answers = [Answer(items[0].id, "[0.1, 0.1, 0.5, 0.5] {0.1,0.3}", {})]
    prediction = run.to_prediction(items[0], answers[0], task, "groundinggpt")
    picture = prediction_picture(prediction, items[0])
    assert picture.mode == "RGB" and min(picture.size) >= (256 if task == "rec" else 100)


def test_records_without_target_or_of_another_task_are_named(tmp_path):
    record = Record("r1", [], {"image": "a.png"}, {}, where="data.jsonl:3")
    with pytest.raises(RecordError, match=r"data.jsonl:3: no 'target'"):
        items_from_records([record], "rec")
    record.extra["target"] = {"task": "video_tg", "spans": [[0, 1]], "duration": 2}
    with pytest.raises(RecordError, match="does not answer task 'rec'"):
        items_from_records([record], "rec")


def test_benchmark_items_become_questions_with_resolved_media():
    rec = RecItem("r", "coco/1.jpg", "man in red", (Box(1, 2, 3, 4),), (640, 480))
    moment = MomentItem("m", "v1.mp4", "a person opens a door.", (Span(1.0, 5.0),), 30.0)
    items = items_from_benchmark([rec, moment], roots={"image": "/img", "video": "s3://bucket/videos"})
    assert items[0].query.question == "Where is man in red?" and items[0].query.media == {"image": "/img/coco/1.jpg"}
    assert items[0].image_size == (640, 480) and items[0].truths == (Box(1, 2, 3, 4),)
    assert items[1].query.media == {"video": "s3://bucket/videos/v1.mp4"} and items[1].duration == 30.0
    assert items[1].query.question.endswith("a person opens a door?")


def test_repeated_ids_are_refused(world):
    items = items_from_records(read_records(str(world.path("rec", "test"))), "rec")
    with pytest.raises(ValueError, match="unique"):
        run.evaluate(None, None, [items[0], items[0]], "rec")


def test_command_prints_metrics_and_refuses_bad_roots(world, model_folder, tmp_path, capsys):
    parser = add_eval_arguments(argparse.ArgumentParser())
    argv = [
        model_folder,
        str(world.path("audio_tg", "test")),
        "--task",
        "audio_tg",
        "--out",
        str(tmp_path),
        "--roots",
        f"sound={world.root}",
        "--max-new-tokens",
        "4",
        "--accelerator",
        "cpu",
    ]
    assert run_eval(parser.parse_args(argv)) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((tmp_path / "metrics.json").read_text())
    assert run_eval(parser.parse_args([*argv, "--roots", "audio=/x"])) == 2  # the last --roots wins
    assert "not record media keys" in capsys.readouterr().err


def test_settings_default_to_the_template_and_format_the_model_folder_records(model_folder):
    settings = run.EvalSettings(model=model_folder, data="unused.jsonl", task="rec", out="unused")
    assert (settings.template, settings.fmt) == (None, None)  # read from the folder at evaluation
    assert resolve_text_settings(model_folder) == ("groundinggpt_short_media_last", "groundinggpt")  # the tiny recipes'
    assert resolve_text_settings(model_folder, "llava_v0", "shikra") == ("llava_v0", "shikra")
    with pytest.raises(ValueError, match="nope"):
        run.EvalSettings(model=model_folder, data="u", task="rec", out="u", fmt="nope")
