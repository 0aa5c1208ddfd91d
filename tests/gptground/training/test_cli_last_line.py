"""The last line a user sees after `gptground run` is `run folder: PATH` (issue 17).

"Sees" means the terminal, where stdout and stderr interleave in time order: the run is
started on a pseudo-terminal (both streams line-buffered, as for a user), with the progress
bar on, and the last visible line of everything it wrote is checked. ANSI escapes (Rich's
progress bar, cursor moves) and carriage-return overwrites do not count as lines.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from training_fixtures import RECIPES, tiny_overrides

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def visible_lines(output: str) -> list[str]:
    """Non-blank lines as a terminal shows them: escapes removed, a carriage return
    overwrites its line."""
    lines = []
    for line in ANSI.sub("", output).split("\n"):
        shown = line.rstrip("\r").split("\r")[-1]
        if shown.strip():
            lines.append(shown.strip())
    return lines


def run_on_a_terminal(argv: list[str], timeout: float = 300) -> tuple[int, str]:
    """(exit status, everything written to stdout and stderr) of ``argv`` on a pseudo-terminal."""
    main, worker = pty.openpty()
    # 40 rows x 120 columns: a terminal of size 0 x 0 makes tqdm draw nothing at all.
    fcntl.ioctl(worker, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(argv, stdin=worker, stdout=worker, stderr=worker, close_fds=True)
    os.close(worker)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return process.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


def test_visible_lines_drop_escapes_and_overwritten_text():
    assert visible_lines("a\r\nbar 1/2\rbar 2/2\r\n\x1b[?25hrun folder: x\r\n\x1b[2K") == ["a", "bar 2/2", "run folder: x"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_the_last_line_of_a_run_is_the_run_folder(world, tmp_path):
    overrides = [o for o in tiny_overrides(world, tmp_path / "runs") if "enable_progress_bar" not in o]
    argv = [sys.executable, "-m", "gptground.cli", "run", str(RECIPES / "stage1.yaml"), *overrides,
            "trainer.max_steps=2", "trainer.enable_progress_bar=true", "run.name=last-line"]
    status, output = run_on_a_terminal(argv)
    assert status == 0, output[-3000:]
    lines = visible_lines(output)
    expected = f"run folder: {tmp_path / 'runs' / 'last-line' / 'version_0'}"
    assert lines[-1] == expected, f"the last lines were {lines[-5:]}"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_the_last_line_of_a_pipeline_run_is_the_run_folder(tmp_path):
    """The demo's path: synthesise a world, train a stage, evaluate, print the table."""
    import dataclasses
    import json

    from omegaconf import OmegaConf
    from training_fixtures import world_config

    synth = json.loads(json.dumps(dataclasses.asdict(world_config())))
    synth["test"] = dict(synth["val"])
    overrides = [o for o in tiny_overrides(tmp_path, tmp_path) if not o.startswith(("data.dir", "run.output_dir"))]
    pipeline = {
        "name": "last-line", "output_dir": str(tmp_path / "runs"), "data_dir": str(tmp_path / "world"), "synth": synth,
        "stages": [{"recipe": str(RECIPES / "stage1.yaml"), "steps": 2}],
        "overrides": [o for o in overrides if "enable_progress_bar" not in o] + ["trainer.enable_progress_bar=true"],
        "eval": {"tasks": [{"task": "rec", "data": "annotations/stage2/rec.test.jsonl"}], "limit": 2,
                 "batch_size": 2, "max_new_tokens": 4, "pictures": 1},
    }
    OmegaConf.save(OmegaConf.create({"pipeline": pipeline}), tmp_path / "pipeline.yaml")
    status, output = run_on_a_terminal([sys.executable, "-m", "gptground.cli", "run", str(tmp_path / "pipeline.yaml")])
    assert status == 0, output[-3000:]
    lines = visible_lines(output)
    assert lines[-1] == f"run folder: {tmp_path / 'runs' / 'last-line' / 'version_0'}", lines[-5:]
    assert lines[-2].startswith("wall time:")
