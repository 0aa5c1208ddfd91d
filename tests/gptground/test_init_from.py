"""`model.init_from` by path, run name or `latest`: the newest finished model folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gptground.config import RecipeError
from gptground.config.init_from import resolve_init_from


def model_folder(root: Path, run: str, version: int, finished: bool = True, mtime: int = 0) -> Path:
    """A model folder as training leaves it; an unfinished one lacks its weights."""
    folder = root / run / f"version_{version}" / "model"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model: {}\n")
    if finished:
        weights = folder / "model.safetensors"
        weights.write_bytes(b"")
        os.utime(weights, ns=(mtime, mtime))
    return folder


def test_a_path_is_kept_as_given(tmp_path):
    assert resolve_init_from(str(tmp_path / "some" / "model"), str(tmp_path)) == str(tmp_path / "some" / "model")
    assert resolve_init_from(None, str(tmp_path)) is None


def test_a_run_name_gives_its_newest_finished_folder(tmp_path):
    model_folder(tmp_path, "stage1", 0, mtime=10**18)
    newest = model_folder(tmp_path, "stage1", 1, mtime=2 * 10**18)
    model_folder(tmp_path, "stage1", 2, finished=False)  # a restart that crashed before saving
    model_folder(tmp_path, "stage2", 0, mtime=3 * 10**18)
    assert resolve_init_from("stage1", str(tmp_path)) == str(newest)


def test_latest_is_the_newest_finished_folder_of_any_run(tmp_path):
    model_folder(tmp_path, "stage1", 3, mtime=10**18)
    newest = model_folder(tmp_path, "stage2", 0, mtime=2 * 10**18)
    model_folder(tmp_path, "stage3", 0, finished=False)
    assert resolve_init_from("latest", str(tmp_path)) == str(newest)


def test_a_run_without_a_finished_folder_lists_what_exists(tmp_path):
    model_folder(tmp_path, "stage1", 0, finished=False)
    other = model_folder(tmp_path, "tiny-stage1", 0)
    with pytest.raises(RecipeError) as info:
        resolve_init_from("stage1", str(tmp_path))
    message = str(info.value)
    assert "`model.init_from`='stage1'" in message and "not found" in message and str(other) in message


def test_latest_with_nothing_there_says_so(tmp_path):
    with pytest.raises(RecipeError, match=r"(?s)any run under .*\(none\)"):
        resolve_init_from("latest", str(tmp_path))
