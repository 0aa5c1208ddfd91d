"""``gptground ground``: the answer printed as JSON and a picture written."""

from __future__ import annotations

import argparse
import glob
import json

import pytest
from PIL import Image

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
