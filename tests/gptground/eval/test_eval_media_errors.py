"""A media failure in evaluation is a wrong answer, named and counted; ``strict`` fails instead
(issue 17, fault 5). One and two processes give the same files."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch.multiprocessing.spawn import ProcessRaisedException

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))  # the tiny world/model helpers
from tiny_assets import make_model_folder, make_world

from gptground.data.readers import read_records
from gptground.eval import generate, run
from gptground.eval.cli import add_eval_arguments, run_eval
from gptground.eval.score import score_file
from gptground.processor import SampleMediaError

BROKEN = {1: "missing", 3: "cut"}  # rec test item index -> what happened to its image


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny world with the images of two rec test items broken: one deleted, one cut."""
    torch.set_num_threads(2)
    manifest = make_world(tmp_path_factory.mktemp("eval-media") / "world")
    records = read_records(str(manifest.path("rec", "test")))
    for index, kind in BROKEN.items():
        image = manifest.root / records[index].media["image"]
        if kind == "missing":
            image.unlink()
        else:
            image.write_bytes(image.read_bytes()[:100])
    return manifest


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> str:
    return make_model_folder(tmp_path_factory.mktemp("eval-media-model") / "model")


@pytest.fixture
def true_answers(world, monkeypatch):
    """Generation answers each prompt with its record's true text; media still load for real."""
    truth = {r.id: r.conversations[-1].value for r in read_records(str(world.path("rec", "test")))}

    def generate_batch(model, processor, samples, *args, **kwargs):
        return [truth[s.sample_id] for s in samples]

    monkeypatch.setattr(generate, "generate_batch", generate_batch)  # forked ranks inherit it


def _outputs(folder: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((folder / "metrics.json").read_text())
    return metrics, [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def _evaluate(world, model_folder, out: Path, **options):
    return run.evaluate_file(
        model_folder, str(world.path("rec", "test")), "rec", str(out),
        roots={"image": str(world.root)}, batch_size=2, accelerator="cpu", **options,
    )


def test_a_broken_image_is_a_wrong_answer_named_and_counted(world, model_folder, tmp_path, true_answers):
    metrics = _evaluate(world, model_folder, tmp_path)
    saved, lines = _outputs(tmp_path)
    records = read_records(str(world.path("rec", "test")))
    # 5 items, 3 answered right, the 2 broken ones wrong and still in the denominator
    assert metrics == saved == {"acc@0.5": 0.6, "n": 5, "parse_failures": 0, "media_errors": 2}
    assert score_file(tmp_path / "predictions.jsonl", "rec") == metrics
    for index, line in enumerate(lines):
        if index in BROKEN:
            assert records[index].media["image"] in line["error"]
            assert line["prediction"] == "" and line["boxes"] == [] and line["iou"] == 0.0
            assert line["image_size"] == records[index].extra["target"]["image_size"]
        else:
            assert "error" not in line and line["iou"] > 0.9
    assert "no such file" in lines[1]["error"]


def test_strict_fails_naming_the_file(world, model_folder, tmp_path, true_answers):
    records = read_records(str(world.path("rec", "test")))
    with pytest.raises(SampleMediaError, match=records[1].media["image"]):
        _evaluate(world, model_folder, tmp_path, strict=True)
    assert not (tmp_path / "metrics.json").exists()


def test_two_processes_write_the_same_files_and_fail_together_when_strict(world, model_folder, tmp_path, true_answers):
    one = _evaluate(world, model_folder, tmp_path / "one")
    two = _evaluate(world, model_folder, tmp_path / "two", devices=2, strategy="ddp_fork")
    assert one == two and two["media_errors"] == 2
    for name in ("metrics.json", "predictions.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()

    records = read_records(str(world.path("rec", "test")))
    # A forked rank's error reaches the parent as the text of its traceback.
    with pytest.raises(ProcessRaisedException, match=rf"EvalMediaError: .*{records[3].media['image']}"):
        _evaluate(world, model_folder, tmp_path / "strict", devices=2, strategy="ddp_fork", strict=True)
    assert not (tmp_path / "strict/metrics.json").exists()


def test_command_goes_on_by_default_and_stops_with_strict(world, model_folder, tmp_path, capsys, true_answers):
    parser = add_eval_arguments(argparse.ArgumentParser())
    argv = [model_folder, str(world.path("rec", "test")), "--task", "rec", "--out", str(tmp_path / "out"),
            "--roots", f"image={world.root}", "--accelerator", "cpu"]
    assert run_eval(parser.parse_args(argv)) == 0
    assert json.loads(capsys.readouterr().out)["media_errors"] == 2

    argv[5] = str(tmp_path / "strict")
    assert run_eval(parser.parse_args([*argv, "--strict"])) == 2
    records = read_records(str(world.path("rec", "test")))
    assert records[1].media["image"] in capsys.readouterr().err
    assert not (tmp_path / "strict").exists()


def test_score_reads_error_lines_with_unknown_size_as_wrong_answers(tmp_path):
    path = tmp_path / "predictions.jsonl"
    lines = [
        {"id": "a", "prediction": "[0.0, 0.0, 0.5, 0.5]", "answer": [[0, 0, 50, 50]], "image_size": [100, 100]},
        {"id": "b", "prediction": "", "answer": [[0, 0, 50, 50]], "image_size": None, "error": "b.png: no such file"},
        {"id": "c", "prediction": "", "answer": [[0, 0, 50, 50]], "image_size": [100, 100]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert score_file(path, "rec") == {"acc@0.5": 1 / 3, "n": 3, "parse_failures": 1, "media_errors": 1}

    spans = tmp_path / "spans.jsonl"
    spans.write_text(json.dumps({"id": "v", "prediction": "", "answer": [[0, 1]], "duration": None, "error": "v.mp4: cut"}) + "\n")
    assert score_file(spans, "tvg")["media_errors"] == 1
    spans.write_text(json.dumps({"id": "v", "prediction": "", "answer": [[0, 1]], "duration": None}) + "\n")
    with pytest.raises(ValueError, match="duration"):  # null only where the media failed
        score_file(spans, "tvg")


def test_the_demo_draws_no_picture_for_an_item_whose_image_failed(world, tmp_path):
    from gptground.eval.generate import Answer
    from gptground.eval.queries import items_from_records
    from gptground.pipeline import draw_pictures

    items = items_from_records(read_records(str(world.path("rec", "test"))), "rec", {"image": str(world.root)})
    answers = [
        Answer(item.id, "", {}, error="cannot load") if index in BROKEN else Answer(item.id, "[0.1, 0.1, 0.5, 0.5]", {})
        for index, item in enumerate(items)
    ]
    predictions = [run.to_prediction(item, answer, "rec", "groundinggpt") for item, answer in zip(items, answers)]
    draw_pictures("rec", items, predictions, str(tmp_path), count=3)
    drawn = sorted(p.stem for p in tmp_path.glob("*.png"))
    assert drawn == sorted(items[i].id for i in (0, 2, 4))  # the first three readable ones
