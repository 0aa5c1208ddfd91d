"""``gptground ground``: the answer printed as JSON and a picture written."""

from __future__ import annotations

import argparse
import glob
import json
import os

import pytest
from PIL import Image
from scripted import script_answers
from transformers import AutoTokenizer

from gptground.ground_cli import add_ground_arguments, modality_of_file, run_ground
from modalities import UnsupportedMediaError


def ground(*argv: str) -> int:
    return run_ground(add_ground_arguments(argparse.ArgumentParser()).parse_args(list(argv)))


def test_image_answer_and_picture(model_folder, world, tmp_path, capsys):
    image = min(glob.glob(str(world.root / "images/test/img-*.png")))
    out = tmp_path / "answer.png"
    assert (
        ground(
            model_folder,
            image,
            "Where is the red circle?",
            "--out",
            str(out),
            "--truth",
            "4,4,20,20",
            "--max-new-tokens",
            "4",
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["question"] == "Where is the red circle?" and isinstance(report["answer"], str)
    assert report["image_size"] == list(Image.open(image).size) and isinstance(report["boxes"], list)
    assert Image.open(out).size[0] >= 256


def test_video_answer_with_a_timeline(model_folder, world, tmp_path, capsys):
    video = min(glob.glob(str(world.root / "videos/test/*.mp4")))
    out = tmp_path / "timeline.png"
    assert (
        ground(
            model_folder, video, "When does it move?", "--out", str(out), "--truth", "0.5,1.5", "--max-new-tokens", "4"
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["duration"] > 0 and report["picture"] == str(out)
    assert Image.open(out).width == 800


def test_bad_truth_and_unknown_files_are_reported(model_folder, world, capsys):
    video = min(glob.glob(str(world.root / "videos/test/*.mp4")))
    assert ground(model_folder, video, "When?", "--truth", "1,2,3") == 2
    assert "start,end seconds" in capsys.readouterr().err
    with pytest.raises(UnsupportedMediaError, match="--modality"):
        modality_of_file("notes.txt")
    assert modality_of_file("clip.MP4") == "video" and modality_of_file("a.flac") == "audio"



def test_the_printed_box_and_span_are_pixels_and_seconds(model_folder, world, capsys, monkeypatch):
    """With the answer fixed by construction, the JSON holds exactly the converted values."""
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(model_folder, "tokenizer"))
    image = next(p for p in sorted(glob.glob(str(world.root / "images/test/*.png"))) if Image.open(p).size == (80, 48))
    script_answers(monkeypatch, tokenizer, "[0.25, 0.375, 0.75, 0.625]")
    assert ground(model_folder, image, "Where is the red circle?", "--max-new-tokens", "40") == 0
    report = json.loads(capsys.readouterr().out)
    # 80 x 48 in an 80-pixel square, 16 rows of padding above: see test_api
    assert report["boxes"] == [[20.0, 14.0, 60.0, 34.0]] and report["image_size"] == [80, 48]
    assert report["answer"] == "[0.25, 0.375, 0.75, 0.625]" and report["parse_failures"] == []

    record = json.loads(world.path("video_tg", "test").read_text().splitlines()[0])
    duration = record["target"]["duration"]
    script_answers(monkeypatch, tokenizer, "{0.25,0.75}")
    assert ground(model_folder, str(world.root / record["video"]), "When does it move?", "--max-new-tokens", "40") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["duration"] == pytest.approx(duration, abs=1e-6)
    assert report["spans"] == [pytest.approx([0.25 * duration, 0.75 * duration], abs=1e-6)]
