"""Host memory of the stage-1 path, against the bytes of the weights (issue 15's targets).

    python benchmarks/memory.py                          # the 0.83B shape, ~4-5 min on 2 cores
    python benchmarks/memory.py --shape tiny --out m.json
    python benchmarks/memory.py --shape hidden=1024,layers=8,heads=8,intermediate=2816,vocab=32000
    python benchmarks/memory.py --plan [--measured m.json]   # the 7B table per stage and strategy

For a LLaMA-shape decoder made on the fly (``decoder_shapes.py``: bf16 safetensors, random
weights) and a tokenizer folder its vocabulary covers, each measurement runs in a fresh
Python process, launched by this one (which never imports torch, so the children start
small):

1. ``recipes/tiny/stage1.yaml`` with ``model.decoder.path=<folder>``, bf16-true, one
   optimizer step, on a small synthetic world: ``gptground.training.run.train``;
2. ``gptground.api.Grounder.load`` of the resulting model folder on CPU;
3. ``gptground.model.folder.save_model_folder`` of that model, loaded by ``build_model``
   (``model.init_from``) first; the peak is taken over the save only (the kernel's peak
   counter is reset once the model is loaded, ``/proc/self/clear_refs``);
4. the size of the run's ``checkpoints/`` folder.

Peak RSS is the kernel's high-water mark of the child (``VmHWM``; the launcher also reads
``ru_maxrss`` of exactly that child through ``os.wait4``). RSS counts the touched pages of
memory-mapped files too: a safetensors file read through mmap is part of the peak.
Targets (issue 15, for the 0.83B shape): build+step <= 1.5 x weights + 1.5 GB;
Grounder.load <= 1.25 x loaded parameter bytes + 1 GB; checkpoints/ <= 0.5 x decoder weights.
"weights" is the decoder folder's bf16 parameter bytes. GB = 1e9 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9
RESULT_FILE = "result.json"  # each child writes its numbers here, in its own folder

# (multiplier of the reference bytes, constant bytes) of each target in the issue.
TARGETS = {
    "build_step": (1.5, 1.5 * GB),  # reference: decoder weight bytes
    "load": (1.25, 1.0 * GB),  # reference: bytes of the loaded model's parameters and buffers
    "checkpoints": (0.5, 0.0),  # reference: decoder weight bytes
}


# --- measurements inside a child process ---------------------------------------------------
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the next peak is of what follows."""
    Path("/proc/self/clear_refs").write_text("5")


def _write_result(work: Path, name: str, numbers: dict) -> None:
    numbers["vm_hwm_bytes"] = _status_kb("VmHWM") * 1024
    (work / name).mkdir(parents=True, exist_ok=True)
    (work / name / RESULT_FILE).write_text(json.dumps(numbers, indent=1))


def child_make(work: Path, shape_spec: str, synth_scale: float) -> None:
    """Decoder folder, tokenizer folder and synthetic world (not measured)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from decoder_shapes import parse_shape, shape_dict, write_decoder_folder, write_tokenizer_folder

    shape = parse_shape(shape_spec)
    weights = write_decoder_folder(work / "decoder", shape)
    write_tokenizer_folder(work / "tokenizer", shape.vocab_size)
    if not (work / "synth" / "annotations").is_dir():
        subprocess.run([sys.executable, "-m", "gptground.cli", "data", "synth", "--out", str(work / "synth"),
                        "--scale", str(synth_scale), "--no-progress"], check=True)
    _write_result(work, "make", {"shape": shape_dict(shape), "decoder_weight_bytes": weights,
                                 "decoder_parameters": shape.num_parameters()})


def stage1_overrides(work: Path) -> list[str]:
    return [
        f"model.decoder.path={work / 'decoder'}",
        f"model.tokenizer={work / 'tokenizer'}",
        "trainer.precision=bf16-true",
        # As the reference recipes (base.yaml) train: without it the step's saved activations
        # (batch 16 x 256 tokens through 24 layers, ~1.8 GB here) dominate what is measured,
        # and they scale with the batch, not with how the model is built.
        "model.decoder.gradient_checkpointing=true",
        "trainer.max_steps=1",
        "trainer.enable_progress_bar=false",
        f"data.dir={work / 'synth'}",
        f"run.output_dir={work / 'runs'}",
    ]


def child_train(work: Path) -> None:
    from gptground.config import load_recipe
    from gptground.training.run import train

    recipe = load_recipe(str(ROOT / "recipes" / "tiny" / "stage1.yaml"), stage1_overrides(work))
    run_dir = train(recipe)
    _write_result(work, "train", {"run_dir": os.path.abspath(run_dir)})


def child_load(work: Path, model_dir: str) -> None:
    import torch

    from gptground.api import Grounder

    grounder = Grounder.load(model_dir, device="cpu")
    tensors = [*grounder.model.parameters(), *grounder.model.buffers()]
    _write_result(work, "load", {
        "loaded_bytes": sum(t.numel() * t.element_size() for t in tensors),
        "loaded_dtypes": sorted({str(t.dtype) for t in tensors}),
        "torch_threads": torch.get_num_threads(),
    })


def child_save(work: Path, run_dir: str) -> None:
    from gptground.config import load_recipe
    from gptground.model.build import build_model
    from gptground.model.folder import save_model_folder

    recipe = load_recipe(os.path.join(run_dir, "recipe.yaml"), [f"model.init_from={os.path.join(run_dir, 'model')}"])
    model, tokenizer = build_model(recipe.model)
    before = _status_kb("VmRSS") * 1024
    _reset_peak()
    start = time.perf_counter()
    save_model_folder(model, tokenizer, recipe.model, str(work / "saved"),
                      template=recipe.data.template, grounding_format=recipe.data.grounding_format)
    _write_result(work, "save", {"rss_before_save_bytes": before, "save_s": time.perf_counter() - start})


# --- the launcher ------------------------------------------------------------------------
def run_child(args: list[str], threads: int) -> dict:
    """Run this script as a child with ``args``; returns its exit rusage's peak RSS in bytes."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], env=env, cwd=str(ROOT))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(args)} exited with {proc.returncode}")
    return {"ru_maxrss_bytes": usage.ru_maxrss * 1024, "wall_s": round(time.perf_counter() - start, 1)}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def measure(work: Path, shape: str, synth_scale: float, threads: int) -> dict:
    base = ["--work", str(work)]
    made = run_child(["--child", "make", "--shape", shape, "--synth-scale", str(synth_scale), *base], threads)
    results = {"make": {**_read(work, "make"), **made}}
    results["train"] = {**run_child(["--child", "train", *base], threads), **_read(work, "train")}
    run_dir = results["train"]["run_dir"]
    model_dir = os.path.join(run_dir, "model")
    results["load"] = {**run_child(["--child", "load", "--model-dir", model_dir, *base], threads), **_read(work, "load")}
    results["save"] = {**run_child(["--child", "save", "--run-dir", run_dir, *base], threads), **_read(work, "save")}
    results["checkpoints_bytes"] = folder_bytes(Path(run_dir) / "checkpoints")
    results["model_folder_bytes"] = folder_bytes(Path(model_dir))
    return results


def _read(work: Path, name: str) -> dict:
    return json.loads((work / name / RESULT_FILE).read_text())


def _peak(child: dict) -> int:
    """The child's peak RSS: the larger of VmHWM and ru_maxrss (they agree to a few MB)."""
    return max(child["vm_hwm_bytes"], child["ru_maxrss_bytes"])


def table_rows(results: dict) -> list[dict]:
    """One row per measurement: value, reference bytes, target bytes (None: no target), pass."""
    weights = results["make"]["decoder_weight_bytes"]
    save = results["save"]

    def row(what, key, value, reference, ref_name):
        mult, const = TARGETS.get(key, (None, None))
        target = None if mult is None else mult * reference + const
        return {"what": what, "key": key, "bytes": value, "reference_bytes": reference, "reference": ref_name,
                "target_bytes": target, "target": None if mult is None else f"{mult:g} x {ref_name} + {const / GB:g} GB",
                "pass": None if target is None else value <= target}

    return [
        row("build stage 1 + 1 step, peak RSS", "build_step", _peak(results["train"]), weights, "weights"),
        row("Grounder.load on CPU, peak RSS", "load", _peak(results["load"]), results["load"]["loaded_bytes"],
            "loaded params"),
        row("save model folder, peak RSS (resident before: "
            f"{save['rss_before_save_bytes'] / GB:.2f} GB)", "save", save["vm_hwm_bytes"], weights, "weights"),
        row("checkpoints/ folder, bytes on disk", "checkpoints", results["checkpoints_bytes"], weights, "weights"),
    ]


def print_table(rows: list[dict], header_note: str) -> None:
    print(header_note)
    cells = [("what", "GB", "x ref", "ref", "target", "")]
    for r in rows:
        target = "-" if r["target_bytes"] is None else f"<= {r['target_bytes'] / GB:.2f} GB ({r['target']})"
        verdict = "" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        cells.append((r["what"], f"{r['bytes'] / GB:.2f}", f"{r['bytes'] / r['reference_bytes']:.2f}",
                      f"{r['reference']} {r['reference_bytes'] / GB:.2f} GB", target, verdict))
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    for i, c in enumerate(cells):
        print(" | ".join(f"{v:<{w}}" if j in (0, 3, 4) else f"{v:>{w}}" for j, (v, w) in enumerate(zip(c, widths))))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="0.83b", help="0.83b, 7b, tiny, or hidden=..,layers=..,heads=..,intermediate=..,vocab=..")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed after)")
    parser.add_argument("--synth-scale", type=float, default=0.02, help="`gptground data synth --scale` of the world")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each child")
    parser.add_argument("--plan", action="store_true", help="print the 7B memory table per stage and strategy")
    parser.add_argument("--measured", type=Path, help="with --plan: a JSON from a measured run, to extrapolate host RSS")
    # Internal: the measured steps, each run by the launcher in a fresh process.
    parser.add_argument("--child", choices=["make", "train", "load", "save"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.plan:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from memory_plan import main as plan_main

        return plan_main(args.out, args.measured)
    if args.child:
        work = args.work
        {"make": lambda: child_make(work, args.shape, args.synth_scale), "train": lambda: child_train(work),
         "load": lambda: child_load(work, args.model_dir), "save": lambda: child_save(work, args.run_dir)}[args.child]()
        return 0

    with tempfile.TemporaryDirectory(prefix="gptground-memory-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        results = measure(work, args.shape, args.synth_scale, args.threads)
    rows = table_rows(results)
    made = results["make"]
    print_table(rows, f"decoder {args.shape}: {made['decoder_parameters']:,} parameters, "
                      f"{made['decoder_weight_bytes'] / GB:.2f} GB bf16; loaded model "
                      f"{results['load']['loaded_bytes'] / GB:.2f} GB ({', '.join(results['load']['loaded_dtypes'])})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"shape": args.shape, "rows": rows, "raw": results}, indent=1))
    return 0 if all(r["pass"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
