"""Stage-1 and stage-2 steps of the 7B shape through our LightningModule, per strategy.

    python benchmarks/scale_gpu.py                                    # 7B on one GPU: fsdp, deepspeed_stage_2
    python benchmarks/scale_gpu.py --shape tiny --accelerator cpu --strategy auto --precision 32-true

What runs: ``GroundingModel`` from ``build_model`` (recipe ``recipes/tiny/stage1.yaml`` with
the decoder's tiny shape set to Vicuna-7B v1.5's: 4096 wide, 32 layers, 32 heads, SwiGLU
11008, vocab 32000 + the image tokens; random weights made directly on the device, no
files), one image modality whose encoder is a random-weight CLIP ViT-L/14 at 336 px (the
reference shape) and whose adapter is the reference MLP to 4096; video and audio are left
out. The image features are encoded once (random pixels) and fed as ``encoded`` features,
so the steps time the adapter and decoder, as a feature-cached run does. Each sample is
``<s> <im_start> <im_patch> x 576 <im_end>`` then text ids up to ``--seq``, every text
position labelled (the HF baseline's loss covers all positions too).

Stage 1 trains the adapter and the new token rows (decoder frozen); stage 2 also the
decoder. Both use ``model.decoder.gradient_checkpointing: true`` as the recipes do, the
strategy ``build_strategy`` makes for ``trainer.strategy``, AdamW as the recipe sets it,
and Lightning's Trainer. Each (stage, strategy) runs in its own process, so an
out-of-memory case is a row that says so and the next one starts clean.

Precision (``--precision``, default bf16-mixed as the recipes): fp32 masters. Stage 2 on one
GPU under fsdp then holds 4 + 4 + 8 = 16 bytes per parameter (~108 GB for 6.74B) plus bf16
gathers and activations: fits in an H200's 141 GB; deepspeed_stage_2 adds bf16 weights and
fp32 gradient partitions (~135 GB before activations) and may not; ``bf16-true`` (no fp32
masters, 8 bytes per parameter) fits everywhere but is not what the recipes train with.

Tokens/s counts every position of the batch (batch x seq) per optimizer step; MFU uses the
baseline's formula ((6 if the decoder trains else 4) x decoder parameters + attention
FLOPs per token, over 989 TFLOP/s) so that the ratios to ``hf_baseline_gpu.py``'s
``vicuna7b_frozen_sdpa`` (stage 1) and ``llama1b_full_sdpa`` (stage 2) compare like with
like; recomputation under checkpointing is not counted as useful FLOPs. Peak GPU memory
is ``torch.cuda.max_memory_allocated`` over the whole case (build included).

Writes ``scale_gpu.json`` to ``$OUT`` (or ``--out``); reads ``gpu_baseline.json`` there if
the baseline ran first in the same job, and prints the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

PEAK_FLOPS = 989e12  # the baseline's reference: H100 SXM dense bf16
# Packages `modalities` imports at import time for media this benchmark never touches: the
# decoders of video and audio files, and ImageBind for the audio encoder (with the
# submodules it is imported through). None is on the GPU machine.
UNUSED_IMPORTS = {"av": (), "decord": (), "soundfile": (), "imagebind": ("imagebind.models",)}
VICUNA_7B = {"hidden_size": 4096, "num_layers": 32, "num_heads": 32, "intermediate_size": 11008,
             "max_position_embeddings": 4096}
CLIP_L_336 = {"image_size": 336, "adapter_merge": 1, "tiny": {"patch_size": 14, "hidden_size": 1024,
                                                              "num_layers": 24, "num_heads": 16}}
SHAPES = {"7b": (VICUNA_7B, 32000, CLIP_L_336), "tiny": (None, 2048, None)}  # (decoder, vocab, image) overrides
BASELINE_CASES = {"1": "vicuna7b_frozen_sdpa", "2": "llama1b_full_sdpa"}


class _AbsentModule(types.ModuleType):
    """Stands for a package that is not installed. Attribute chains resolve (module-level
    code such as ``from imagebind.models import helpers`` runs); calling anything raises."""

    def __getattr__(self, attr):
        if attr.startswith("__"):  # introspection (hasattr(module, "__file__")) finds nothing
            raise AttributeError(attr)
        return _AbsentModule(f"{self.__name__}.{attr}")

    def __call__(self, *args, **kwargs):
        raise ImportError(f"`{self.__name__.split('.')[0]}` is not installed here; scale_gpu.py feeds "
                          f"encoded image features and decodes no media (called {self.__name__})")


def allow_missing_media_packages() -> list[str]:
    """Let `modalities` import where av, decord, soundfile or imagebind are missing."""
    absent = [name for name in UNUSED_IMPORTS if importlib.util.find_spec(name) is None]
    for name in absent:
        for module_name in (name, *UNUSED_IMPORTS[name]):
            module = _AbsentModule(module_name)
            module.__spec__ = ModuleSpec(module_name, None)
            sys.modules[module_name] = module
    return absent


# --- one case, in its own process -------------------------------------------------------
def build_recipe(shape: str, stage: str, strategy: str, accelerator: str, precision: str, tokenizer_dir: str):
    from gptground.config import load_recipe

    decoder, _, image = SHAPES[shape]
    overrides = [f"model.tokenizer={tokenizer_dir}", f"trainer.strategy={strategy}",
                 f"trainer.accelerator={accelerator}", f"trainer.precision={precision}",
                 f"model.trainable.decoder={'true' if stage != '1' else 'false'}",
                 "model.decoder.gradient_checkpointing=true"]
    overrides += [f"model.decoder.tiny.{k}={v}" for k, v in (decoder or {}).items()]
    for key, value in (image or {}).items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        overrides += [f"model.modalities.image.{key}{'.' + k if k else ''}={v}" for k, v in items]
    recipe = load_recipe(str(ROOT / "recipes" / "tiny" / "stage1.yaml"), overrides)
    recipe.model.modalities = {"image": recipe.model.modalities["image"]}
    return recipe


class StepTimer:
    """Wall time of each optimizer step (device synchronised at both ends)."""

    def __init__(self, sync):
        import lightning as L

        timer = self

        class Callback(L.Callback):
            def on_train_start(self, trainer, pl_module):
                timer.checkpointing = checkpointing_on(trainer.strategy.model, pl_module.model.decoder)

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                sync()
                timer.started = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                sync()
                timer.times.append(time.perf_counter() - timer.started)

        self.callback = Callback()
        self.times: list[float] = []
        self.started = 0.0
        self.checkpointing = None


def checkpointing_on(wrapped, decoder) -> bool:
    """True when the decoder recomputes activations: HF's flag or the strategy's wrappers."""
    flag = "is_activation_checkpointing" if hasattr(type(decoder), "is_activation_checkpointing") \
        else "is_gradient_checkpointing"  # transformers 5 renamed it; the old name warns
    if getattr(decoder, flag, False):
        return True
    return any("CheckpointWrapper" in type(m).__name__ for m in wrapped.modules())


def synthetic_batch(model, tokenizer, batch: int, seq: int, device) -> dict:
    import torch

    from gptground.processor import IGNORE_INDEX, modality_token_ids

    image = model.modalities["image"]
    ids = modality_token_ids(tokenizer, {"image": image})["image"]
    size = image.config.image_size
    with torch.no_grad():
        pixels = torch.randn(batch, 3, size, size, device=device, dtype=next(image.encoder.parameters()).dtype)
        features = image.encode(pixels)  # the frozen encoder's output, as a feature cache holds it
    n = image.num_tokens
    if seq < n + 4:
        raise ValueError(f"--seq {seq} is shorter than the {n} image tokens + 4")
    generator = torch.Generator().manual_seed(0)
    head = [tokenizer.bos_token_id, ids.start] + [ids.patch] * n + [ids.end]
    text = torch.randint(4, len(tokenizer) - 16, (batch, seq - len(head)), generator=generator)  # below the new tokens
    input_ids = torch.cat([torch.tensor(head).expand(batch, -1), text], dim=1)
    labels = input_ids.clone()
    labels[:, : len(head)] = IGNORE_INDEX
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
            "media": {"image": features.cpu()}, "media_index": {"image": torch.arange(batch)},
            "encoded": ["image"], "sample_ids": [f"synthetic-{i}" for i in range(batch)], "skipped": []}


def run_case(args) -> dict:
    absent = allow_missing_media_packages()
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from decoder_shapes import write_tokenizer_folder
    from gptground.model.build import build_model
    from gptground.model.trainable import apply_trainable, parameter_table
    from gptground.training.module import GroundingLitModule
    from gptground.training.trainer import build_strategy

    on_gpu = args.accelerator in ("gpu", "cuda")
    device = torch.device("cuda" if on_gpu else "cpu")
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        write_tokenizer_folder(tokenizer_dir, SHAPES[args.shape][1])
        recipe = build_recipe(args.shape, args.stage, args.strategy, args.accelerator, args.precision, tokenizer_dir)
        dtype = torch.bfloat16 if args.precision == "bf16-true" else torch.float32
        torch.manual_seed(0)
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        start = time.perf_counter()
        with device:  # random weights made where they train: no host copy of the 7B decoder
            model, tokenizer = build_model(recipe.model, dtype)
        torch.set_default_dtype(default_dtype)
        build_s = time.perf_counter() - start
    apply_trainable(model, recipe.model.trainable)
    trainable = sum(t for _, t, _ in parameter_table(model))
    decoder_params = sum(p.numel() for p in model.decoder.parameters())
    data = synthetic_batch(model, tokenizer, args.batch, args.seq, device)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    timer = StepTimer(sync)
    steps = args.warmup + args.steps
    trainer = L.Trainer(
        accelerator=args.accelerator, devices=1, strategy=build_strategy(recipe.trainer, recipe.model.decoder.gradient_checkpointing), precision=args.precision,
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        use_distributed_sampler=False, callbacks=[timer.callback], default_root_dir=tempfile.mkdtemp(),
    )
    # Each item is a whole prepared batch; DeepSpeed reads the micro-batch size for its
    # throughput logs from the loader's batch sampler, which a batch_size=None loader lacks.
    strategy = trainer.strategy
    if hasattr(strategy, "config") and isinstance(strategy.config, dict):
        strategy.config.setdefault("train_micro_batch_size_per_gpu", args.batch)
    loader = DataLoader([data] * steps, batch_size=None, collate_fn=lambda b: b)
    trainer.fit(GroundingLitModule(model, recipe), train_dataloaders=loader)
    step_s = statistics.median(timer.times[args.warmup:])
    cfg = model.decoder.config
    tokens_per_s = args.batch * args.seq / step_s
    trains = args.stage != "1"
    attention = (3 if trains else 2) * 2 * 2 * args.seq * cfg.hidden_size * cfg.num_hidden_layers
    flops_per_token = (6 if trains else 4) * decoder_params + attention
    return {
        "stage": args.stage, "strategy": args.strategy, "precision": args.precision, "status": "ok",
        "batch": args.batch, "seq": args.seq, "steps_timed": len(timer.times) - args.warmup,
        "decoder_params": decoder_params, "trainable_params": trainable, "build_s": round(build_s, 1),
        "step_s": round(step_s, 4), "tokens_per_s": round(tokens_per_s, 1),
        "mfu_vs_989": round(tokens_per_s * flops_per_token / PEAK_FLOPS, 4),
        "max_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1) if on_gpu else None,
        "gradient_checkpointing": timer.checkpointing, "absent_packages": absent,
    }


# --- the launcher ------------------------------------------------------------------------
def skipped_reason(strategy: str) -> str | None:
    if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        return "deepspeed is not installed here"
    return None


def launch(args, stage: str, strategy: str, out: Path) -> dict:
    reason = skipped_reason(strategy)
    if reason:
        return {"stage": stage, "strategy": strategy, "status": "skipped", "reason": reason}
    result = out / f"case-stage{stage}-{strategy}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--case", stage, "--strategy", strategy,
               "--shape", args.shape, "--accelerator", args.accelerator, "--precision", args.precision,
               "--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--result", str(result)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    print(f"--- stage {stage}, {strategy}", flush=True)
    proc = subprocess.run(command, env=env, cwd=str(ROOT), stderr=subprocess.PIPE, text=True)
    if proc.returncode == 0:
        return json.loads(result.read_text())
    sys.stderr.write(proc.stderr[-4000:])
    status = "out of memory" if "OutOfMemoryError" in proc.stderr or "out of memory" in proc.stderr else "failed"
    return {"stage": stage, "strategy": strategy, "status": status, "reason": failure_reason(proc.stderr)[:300]}


def failure_reason(stderr: str) -> str:
    """The exception line of a failed case: the last line naming an Error or Exception (a
    process group's shutdown warnings can follow it), else the last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\w(Error|Exception)\b", line) and "Warning" not in line]
    return (errors or lines or ["(no message)"])[-1]


def add_ratios(rows: list[dict], baseline: dict | None) -> None:
    for row in rows:
        case = (baseline or {}).get(BASELINE_CASES.get(row["stage"], ""))
        if row["status"] == "ok" and case:
            row["baseline_case"] = BASELINE_CASES[row["stage"]]
            row["tokens_per_s_ratio"] = round(row["tokens_per_s"] / case["tokens_per_s"], 3)
            row["mfu_ratio"] = round(row["mfu_vs_989"] / case["mfu_vs_989"], 3)


def print_table(rows: list[dict]) -> None:
    header = ("stage", "strategy", "precision", "ckpt", "batch x seq", "tokens/s", "MFU", "peak GB",
              "x base tok/s", "x base MFU", "note")
    cells = [header]
    for r in rows:
        if r["status"] != "ok":
            cells.append((r["stage"], r["strategy"], "", "", "", "", "", "", "", "", f"{r['status']}: {r['reason']}"))
            continue
        cells.append((r["stage"], r["strategy"], r["precision"], str(r["gradient_checkpointing"]),
                      f"{r['batch']} x {r['seq']}", f"{r['tokens_per_s']:,.0f}", f"{r['mfu_vs_989']:.3f}",
                      "-" if r["max_mem_gb"] is None else f"{r['max_mem_gb']:.1f}",
                      str(r.get("tokens_per_s_ratio", "-")), str(r.get("mfu_ratio", "-")),
                      f"vs {r['baseline_case']}" if "baseline_case" in r else ""))
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print(" | ".join(f"{v:<{w}}" for v, w in zip(row, widths)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--strategy", default="fsdp,deepspeed_stage_2", help="comma-separated trainer.strategy values")
    parser.add_argument("--stages", default="1,2", help="comma-separated: 1 (decoder frozen), 2 (decoder trains)")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "."))
    parser.add_argument("--case", choices=["1", "2"], help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        args.stage = args.case
        args.result.write_text(json.dumps(run_case(args), indent=1))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [launch(args, stage, strategy, args.out)
            for stage in args.stages.split(",") for strategy in args.strategy.split(",")]
    baseline_file = args.out / "gpu_baseline.json"
    baseline = json.loads(baseline_file.read_text()) if baseline_file.exists() else None
    add_ratios(rows, baseline)
    print_table(rows)
    (args.out / "scale_gpu.json").write_text(json.dumps({"rows": rows, "baseline": baseline}, indent=1))
    return 0 if all(r["status"] in ("ok", "skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
