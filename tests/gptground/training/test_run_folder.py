"""Run folders: writability checks and what `trainer.resume_from` resolves to."""

from __future__ import annotations

import pytest

from gptground.training.run_folder import (
    check_writable,
    find_last_checkpoint,
    resolve_resume,
)


def _version(root, k: int, last: bool):
    folder = root / "stage" / f"version_{k}" / "checkpoints"
    folder.mkdir(parents=True)
    if last:
        (folder / "last.ckpt").write_bytes(b"ckpt")
    return folder / "last.ckpt"


def test_last_is_the_newest_version_that_has_a_last_checkpoint(tmp_path):
    _version(tmp_path, 2, last=True)
    newest = _version(tmp_path, 10, last=True)  # numeric order: version_10 after version_9
    _version(tmp_path, 9, last=True)
    _version(tmp_path, 11, last=False)  # a run that died before its first checkpoint
    (tmp_path / "stage" / "version_x").mkdir()
    assert find_last_checkpoint(str(tmp_path), "stage") == str(newest)
    assert resolve_resume("last", str(tmp_path), "stage") == str(newest)


def test_last_without_any_checkpoint_names_where_it_looked(tmp_path):
    _version(tmp_path, 0, last=False)
    with pytest.raises(FileNotFoundError, match=r"stage/version_\*/checkpoints/last.ckpt"):
        resolve_resume("last", str(tmp_path), "stage")
    with pytest.raises(FileNotFoundError, match="found no"):
        find_last_checkpoint(str(tmp_path), "other-run")


def test_a_checkpoint_path_must_exist(tmp_path):
    ckpt = _version(tmp_path, 0, last=True)
    assert resolve_resume(str(ckpt), str(tmp_path), "stage") == str(ckpt)
    assert resolve_resume(None, str(tmp_path), "stage") is None
    with pytest.raises(FileNotFoundError, match="trainer.resume_from"):
        resolve_resume(str(tmp_path / "nope.ckpt"), str(tmp_path), "stage")


def test_check_writable_creates_the_folder_and_leaves_nothing_behind(tmp_path):
    check_writable(str(tmp_path / "a" / "b"))
    assert list((tmp_path / "a" / "b").iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match=r"not writable \(`run.output_dir`\)"):
        check_writable(str(tmp_path / "file" / "runs"))
