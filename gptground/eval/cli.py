"""``gptground eval``: evaluate a model folder on an annotation file with targets.

    gptground eval RUN/model data/synth/annotations/stage2/rec.test.jsonl --task rec \\
        --out eval/rec --roots data/synth
    gptground eval RUN/model charades.jsonl --task tvg --out eval/tvg --roots video=/data/charades --devices 8
    gptground eval RUN/model charades_sta_test.txt --benchmark charades_sta \
        --benchmark-meta Charades_v1_test.csv --out eval/charades --roots video=/data/Charades_v1_480
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

# Only light imports here: the arguments are defined for `gptground eval --help` without
# torch; the model, processor and Lightning are imported when the command runs.
from gptground.eval.benchmark_files import BENCHMARK_FILES, benchmark_file
from gptground.eval.tasks import EVAL_TASKS
from gptground.grounding import available_formats


def parse_roots(values: Sequence[str]) -> dict[str, str]:
    """``["image=DIR", "sound=DIR"]`` -> {key: DIR}; a lone ``DIR`` is the root of every key.

    Raises:
        ValueError: an unknown record key, or a lone folder mixed with ``key=DIR`` pairs.
    """
    from gptground.eval.queries import default_record_keys  # the registered modalities: torch

    keys = sorted(default_record_keys())
    pairs = [v for v in values if "=" in v]
    if len(pairs) < len(values):
        if len(values) > 1:
            raise ValueError(f"--roots takes one folder for all media or key=DIR pairs, got {list(values)}")
        return {key: values[0] for key in keys}
    roots = dict(v.split("=", 1) for v in pairs)
    unknown = sorted(set(roots) - set(keys))
    if unknown:
        raise ValueError(f"--roots keys {unknown} are not record media keys; known: {keys}")
    return roots


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``eval`` command's arguments to ``parser`` and return it."""
    parser.add_argument("model", help="model folder written by training (<run folder>/model)")
    parser.add_argument(
        "data", help="annotation file (JSONL or JSON list) whose records carry 'target', or a --benchmark file"
    )
    parser.add_argument(
        "--task",
        choices=EVAL_TASKS,
        help="boxes: rec, sound_loc; spans: video_tg, audio_tg, tvg (required unless --benchmark implies it)",
    )
    parser.add_argument(
        "--benchmark",
        choices=tuple(BENCHMARK_FILES),
        help="read DATA as this benchmark's published file (gptground/eval/benchmark_files.py)",
    )
    parser.add_argument(
        "--benchmark-meta", metavar="FILE", help="the benchmark's side file: Charades durations CSV, RefCOCO instances.json"
    )
    parser.add_argument("--split", help="the benchmark's split to keep (RefCOCO: val, testA, testB, test)")
    parser.add_argument("--out", required=True, help="folder for predictions.jsonl and metrics.json")
    parser.add_argument(
        "--roots",
        nargs="+",
        default=[],
        metavar="KEY=DIR",
        help="media roots: image=DIR video=DIR sound=DIR, or one DIR for all",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="questions generated together per device")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="the most tokens per answer")
    parser.add_argument("--devices", type=int, default=1, help="processes, one per device; the numbers do not change")
    parser.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"), help="device kind")
    parser.add_argument(
        "--strategy",
        default=None,
        choices=("ddp", "ddp_spawn", "ddp_fork"),
        help="how processes start (default ddp: the command is re-launched per rank)",
    )
    parser.add_argument(
        "--format",
        dest="fmt",
        default=None,
        help=f"grounding format of the answers (default: the one the model folder records); "
        f"one of {', '.join(available_formats())}",
    )
    parser.add_argument("--template", default=None, help="conversation template (default: the one the model folder records)")
    parser.add_argument("--constrained", action="store_true", help="decode coordinates constrained to the format")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on an item whose media fail to load (default: score it as a wrong answer, "
        "say why in predictions.jsonl's 'error' and count it in metrics.json's 'media_errors')",
    )
    parser.add_argument("--wandb", action="store_true", help="log a W&B table of predictions with pictures")
    parser.add_argument("--wandb-project", default="gptground", help="W&B project")
    parser.add_argument("--wandb-rows", type=int, default=16, help="table rows (each draws a picture)")
    return parser


def run_eval(args: argparse.Namespace) -> int:
    """Run ``eval`` from parsed arguments: metrics JSON on stdout; exit status 2 on bad input."""
    from gptground.data.readers import RecordError
    from gptground.eval.errors import EvalInputError, EvalMediaError
    from gptground.eval.run import EvalSettings, run_evaluation
    from gptground.processor import SampleError

    try:
        task = args.task or (benchmark_file(args.benchmark).task if args.benchmark else None)
        if task is None:
            raise ValueError("--task is required (or --benchmark, which implies it)")
        settings = EvalSettings(
            model=args.model,
            data=args.data,
            task=task,
            out=args.out,
            roots=parse_roots(args.roots),
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            devices=args.devices,
            accelerator=args.accelerator,
            strategy=args.strategy,
            fmt=args.fmt,
            template=args.template,
            constrained=args.constrained,
            limit=args.limit,
            strict=args.strict,
            benchmark=args.benchmark,
            benchmark_meta=args.benchmark_meta,
            split=args.split,
            wandb=args.wandb,
            wandb_project=args.wandb_project,
            wandb_rows=args.wandb_rows,
        )
    except ValueError as error:  # bad arguments: named by the settings' checks
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        metrics = run_evaluation(settings)
    except (RecordError, EvalInputError, EvalMediaError, SampleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if metrics is not None:  # rank 0 of a multi-process run, or the only process
        print(json.dumps(metrics, indent=2))
    return 0
