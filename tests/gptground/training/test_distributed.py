"""Two CPU processes through Lightning's DDP: one node with two devices, and two nodes of
one device simulated on localhost. Each trains, checkpoints and resumes, and the ranks
train on disjoint shares of every epoch.

The runs go through the CLI in subprocesses (Lightning re-launches the command for each
extra rank); ``GPTGROUND_TRACE_SAMPLES`` makes every rank write what it trained on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from training_fixtures import RECIPES, read_trace, tiny_overrides

REPO = RECIPES.parents[1]
TIMEOUT_S = 300
# 12 stage-1 records per epoch, 2 ranks x batch 2: 3 steps per epoch.
COMMON = ("data.batch_size=2", "trainer.accelerator=cpu", "trainer.strategy=ddp",
          "trainer.checkpoint.every_n_train_steps=1")


def _env(trace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    pythonpath = [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(pythonpath), GPTGROUND_TRACE_SAMPLES=str(trace),
               OMP_NUM_THREADS="1", GPTGROUND_LOG="WARNING", **extra)
    return env


def _command(world: Path, out: Path, *extra: str) -> list[str]:
    """The CLI command; the feature cache starts cold, so filling it runs on rank 0 only."""
    return [sys.executable, "-m", "gptground.cli", "run", str(RECIPES / "stage1.yaml"),
            *tiny_overrides(world, out), *COMMON, f"data.feature_cache={out}/features", *extra]


def _check(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _run(command: list[str], env: dict[str, str]) -> None:
    _check(subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S, check=False))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stage1_ids(world: Path) -> set[str]:
    path = world / "annotations" / "stage1"
    return {json.loads(line)["id"] for f in path.glob("*.train.jsonl") for line in f.read_text().splitlines()}


def _check_shares(trace: Path, world: Path, steps: int) -> None:
    """Both ranks ran ``steps`` steps; in epoch 0 they saw disjoint samples covering stage 1."""
    ranks = read_trace(trace)
    assert sorted(ranks) == [0, 1]
    for lines in ranks.values():
        assert [t["step"] for t in lines] == list(range(1, steps + 1))
    epoch0 = [[i for t in lines if t["epoch"] == 0 for i in t["sample_ids"] + t["skipped"]] for lines in ranks.values()]
    assert not set(epoch0[0]) & set(epoch0[1])
    assert sorted(epoch0[0] + epoch0[1]) == sorted(_stage1_ids(world))  # each record once


def _run_dirs(out: Path) -> list[Path]:
    return sorted((out / "tiny-stage1").glob("version_*"))


def test_ddp_two_processes_train_checkpoint_and_resume(world, tmp_path):
    out, trace = tmp_path / "runs", tmp_path / "trace"
    _run(_command(world, out, "trainer.devices=2", "trainer.max_steps=2"), _env(trace))
    _run(_command(world, out, "trainer.devices=2", "trainer.max_steps=4", "trainer.resume_from=last"), _env(trace))

    _check_shares(trace, world, steps=4)
    v0, v1 = _run_dirs(out)  # rank 1 never made a folder of its own
    assert (v0 / "checkpoints" / "last.ckpt").is_file() and (v1 / "model" / "model.safetensors").is_file()


@pytest.mark.slow  # four process starts: about a minute on two busy cores
def test_two_nodes_on_localhost_train_checkpoint_and_resume(world, tmp_path):
    out, trace = tmp_path / "runs", tmp_path / "trace"
    for extra in (("trainer.max_steps=2",), ("trainer.max_steps=4", "trainer.resume_from=last")):
        command = _command(world, out, "trainer.num_nodes=2", "trainer.devices=1", *extra)
        port = str(_free_port())
        nodes = [
            subprocess.Popen(command, env=_env(trace, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(rank)),
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for rank in (0, 1)
        ]
        for node in nodes:
            stdout, stderr = node.communicate(timeout=TIMEOUT_S)
            _check(subprocess.CompletedProcess(node.args, node.returncode, stdout, stderr))

    _check_shares(trace, world, steps=4)
    v0, v1 = _run_dirs(out)
    assert (v0 / "checkpoints" / "last.ckpt").is_file() and (v1 / "model" / "model.safetensors").is_file()
