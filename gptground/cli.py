"""Command line: ``gptground run|eval|score|ground|data`` and the ``lightning`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

EXAMPLES = """examples:
  gptground run recipes/demo.yaml                       # the embedded default, CPU, no downloads
  gptground run recipes/tiny/stage1.yaml trainer.max_steps=20 data.batch_size=4
  gptground run recipes/stage3.yaml model.init_from=stage2   # the newest finished stage2 folder
  lightning run recipes/stage3.yaml trainer.devices=8 trainer.num_nodes=2
  gptground score preds.jsonl --task tvg
  gptground data synth --out data/synth
  gptground convert groundinggpt zwli/GroundingGPT --out models/groundinggpt7b
"""


def _cmd_run(args) -> int:
    from gptground.runner import run_recipe

    run_recipe(args.recipe, args.overrides)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gptground",
        description="Train and query multimodal grounding models.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="train (and evaluate) as a recipe says",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("recipe", help="recipe YAML file")
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=2e-5")
    run.set_defaults(func=_cmd_run)
    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub) -> None:
    """Commands whose modules register their own arguments."""
    from gptground.eval.score import add_score_arguments, run_score

    from gptground.eval.cli import add_eval_arguments, run_eval
    from gptground.ground_cli import add_ground_arguments, run_ground

    evaluate = sub.add_parser("eval", help="evaluate a model folder on a benchmark: predictions JSONL + metrics.json")
    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=run_eval)
    ground = sub.add_parser("ground", help="ask a model one question about an image, video or sound; draw the answer")
    add_ground_arguments(ground)
    ground.set_defaults(func=run_ground)
    score = sub.add_parser("score", help="recompute metrics from a predictions JSONL file")
    add_score_arguments(score)
    score.set_defaults(func=run_score)
    from gptground.convert.cli import add_convert_arguments

    convert = sub.add_parser("convert", help="convert a published checkpoint into a model folder")
    add_convert_arguments(convert)
    from gptground.synth import add_synth_arguments, run_synth

    data = sub.add_parser("data", help="make or check data")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    synth = data_sub.add_parser("synth", help="generate the synthetic grounding world")
    add_synth_arguments(synth)
    synth.set_defaults(func=run_synth)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message says all a user needs: printed in one line, no traceback."""
    from gptground.config import RecipeError
    from modalities import CheckpointNotFoundError, MediaError

    return (RecipeError, CheckpointNotFoundError, MediaError, FileNotFoundError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("GPTGROUND_LOG", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def lightning_main(argv: list[str] | None = None) -> int:
    """``lightning run RECIPE.yaml [key=value ...]``; a Python script goes to ``fabric run``.

    Lightning 2.x ships no ``lightning`` command (its ``fabric run`` replaced the old
    ``lightning run`` for scripts), so this one serves both.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "run" and argv[1].endswith((".yaml", ".yml")):
        return main(argv)
    if argv and argv[0] == "run":
        from lightning.fabric.cli import _main as fabric_main

        return fabric_main(args=argv, standalone_mode=False) or 0
    print(
        "usage: lightning run RECIPE.yaml [key=value ...]   train from a GPTGround recipe\n"
        "       lightning run SCRIPT.py [fabric options]    hand a script to Lightning's `fabric run`\n\n"
        + EXAMPLES,
        file=sys.stderr,
    )
    return 0 if argv[:1] in (["--help"], ["-h"]) else 2


if __name__ == "__main__":
    sys.exit(main())
