"""Faults 1 and 7 of issue 17 under a real DeepSpeed engine (its CPU accelerator): the folder
checkpoint is found by ``resume_from=last`` and read as data only. Skipped without DeepSpeed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'gptground[deepspeed]')")

HERE = Path(__file__).resolve().parent


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.mark.slow  # ~25 s: DeepSpeed's import and two engine builds
def test_deepspeed_folder_checkpoints_are_found_and_read_as_data_only(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[2]), os.environ.get("PYTHONPATH", "")]),
           "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    done = subprocess.run([sys.executable, str(HERE / "deepspeed_safe_run.py"), str(tmp_path), _free_port()],
                          env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("stage ")]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert lines == [f"stage {s}: {what}" for s in (2, 3)
                     for what in ("found and loaded with data-only reads", "pickled code refused")]
