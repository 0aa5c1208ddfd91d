import json
import subprocess
import sys

import pytest

import memory
import memory_plan

GB = memory.GB


def _results(build, load, loaded, save, ckpt, weights=1.0 * GB) -> dict:
    return {
        "make": {"decoder_weight_bytes": weights},
        "train": {"vm_hwm_bytes": build, "ru_maxrss_bytes": build - 1},
        "load": {"vm_hwm_bytes": load - 1, "ru_maxrss_bytes": load, "loaded_bytes": loaded},
        "save": {"vm_hwm_bytes": save, "rss_before_save_bytes": save / 2},
        "checkpoints_bytes": ckpt,
    }


def test_rows_hold_the_issue_targets():
    rows = {r["key"]: r for r in memory.table_rows(_results(3.0 * GB, 4.0 * GB, 2.4 * GB, 2.0 * GB, 0.5 * GB))}
    assert rows["build_step"]["target_bytes"] == pytest.approx(1.5 * GB + 1.5 * GB)
    assert rows["build_step"]["pass"] is True  # 3.0 <= 3.0
    assert rows["load"]["target_bytes"] == pytest.approx(1.25 * 2.4 * GB + 1 * GB)
    assert rows["load"]["bytes"] == 4.0 * GB  # the larger of VmHWM and ru_maxrss
    assert rows["load"]["pass"] is True
    assert rows["checkpoints"]["pass"] is True  # 0.5 <= 0.5 x 1 GB
    assert rows["save"]["pass"] is None  # no target in the issue


def test_rows_fail_above_the_targets():
    rows = {r["key"]: r for r in memory.table_rows(_results(3.1 * GB, 5.1 * GB, 3.2 * GB, 2.0 * GB, 0.6 * GB))}
    assert [rows[k]["pass"] for k in ("build_step", "load", "checkpoints")] == [False, False, False]


def test_peak_reset_forgets_an_earlier_peak():
    code = (
        "import memory, numpy as np\n"
        "a = np.ones(300_000_000 // 8); del a\n"
        "before = memory._status_kb('VmHWM'); memory._reset_peak(); after = memory._status_kb('VmHWM')\n"
        "print(before, after)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(memory.ROOT / "benchmarks")).stdout.split()
    before, after = map(int, out)
    assert before - after > 200_000  # kB: the freed 300 MB no longer counts


def test_plan_counts_the_reference_model_and_orders_the_strategies():
    plan = memory_plan.plan()
    counts = plan["counts"]
    assert counts["decoder"] == 6_738_415_616
    assert counts["encoders"] > 600_000_000  # CLIP-L x 2 + ImageBind-huge audio
    rows = {(r["stage"], r["strategy"]): r for r in plan["rows"]}
    assert len(rows) == 9
    c = memory_plan.Counts(**counts)
    assert rows["2", "ddp"]["params"] == 4 * c.all
    assert rows["1", "ddp"]["trainable_params"] == c.adapters + c.new_rows
    assert rows["2", "fsdp"]["total"] < rows["2", "deepspeed_stage_2"]["total"] < rows["2", "ddp"]["total"]
    for r in rows.values():
        assert r["activations_no_checkpointing"] > 5 * r["activations"]
    assert plan["host"]["bound_bytes"] == pytest.approx(1.5 * 2 * c.decoder + 1.5 * GB)


@pytest.mark.slow
def test_memory_runs_end_to_end_on_the_tiny_shape(tmp_path):
    out = tmp_path / "m.json"
    done = subprocess.run([sys.executable, str(memory.ROOT / "benchmarks" / "memory.py"), "--shape", "tiny",
                           "--out", str(out)], capture_output=True, text=True)
    assert "build stage 1 + 1 step" in done.stdout, done.stderr[-3000:]
    rows = {r["key"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["build_step"]["bytes"] > 100e6 and rows["checkpoints"]["bytes"] > 0
