"""Command line: ``gptground run|eval|score|ground|convert|data`` and the ``lightning`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

EXAMPLES = """examples:
  gptground run recipes/demo.yaml                       # the embedded default, CPU, no downloads
  gptground run recipes/tiny/stage1.yaml trainer.max_steps=20 data.batch_size=4
  gptground run recipes/stage3.yaml model.init_from=stage2   # the newest finished stage2 folder
  lightning run recipes/stage3.yaml trainer.devices=8 trainer.num_nodes=2
  gptground score preds.jsonl --task tvg
  gptground convert groundinggpt zwli/GroundingGPT --out models/groundinggpt7b
  gptground data synth --out data/synth
"""


@dataclass(frozen=True)
class Command:
    """One subcommand. Its arguments and its runner are named as "module:function" and
    imported only when needed, so that ``gptground --help`` and argument errors take well
    under a second: the modules behind ``arguments`` must import no torch, Lightning or
    transformers (a test checks); the runner imports what it needs when it runs.

    Attributes:
        name: the words that select it: "eval", or "data synth" for a nested command.
        help: one line for ``gptground --help``.
        arguments: "module:function" that adds the command's arguments to a parser.
        run: "module:function" that runs it from the parsed arguments; returns an exit status.
    """

    name: str
    help: str
    arguments: str
    run: str


COMMANDS: tuple[Command, ...] = (
    Command("run", "train (and evaluate) as a recipe says", "gptground.cli:add_run_arguments", "gptground.cli:run_recipe_command"),
    Command(
        "eval",
        "evaluate a model folder on a benchmark: predictions JSONL + metrics.json",
        "gptground.eval.cli:add_eval_arguments",
        "gptground.eval.cli:run_eval",
    ),
    Command(
        "ground",
        "ask a model one question about an image, video or sound; draw the answer",
        "gptground.ground_cli:add_ground_arguments",
        "gptground.ground_cli:run_ground",
    ),
    Command(
        "score",
        "recompute metrics from a predictions JSONL file",
        "gptground.eval.score:add_score_arguments",
        "gptground.eval.score:run_score",
    ),
    Command(
        "convert groundinggpt",
        "the released GroundingGPT-7B (a folder or hub id in its LEGO layout) -> a model folder",
        "gptground.convert.cli:add_groundinggpt_arguments",
        "gptground.convert.cli:run_convert",
    ),
    Command(
        "data synth",
        "generate the synthetic grounding world",
        "gptground.synth.cli:add_synth_arguments",
        "gptground.synth.cli:run_synth",
    ),
)
GROUPS = {"convert": "convert a published checkpoint into a model folder", "data": "make or check data"}
"""Help of the first word of nested commands."""


def add_run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=2e-5")
    return parser


def run_recipe_command(args: argparse.Namespace) -> int:
    from gptground.runner import run_recipe

    run_recipe(args.recipe, args.overrides)
    return 0


def _resolve(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def _selected(argv: Sequence[str] | None) -> Command | None:
    """The command ``argv`` names (its words come first, options aside), or None."""
    words = [a for a in (argv or []) if not a.startswith("-")]
    for command in COMMANDS:
        names = command.name.split()
        if words[: len(names)] == names:
            return command
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``gptground`` parser.

    Args:
        argv: the arguments about to be parsed: only the command they name gets its
            arguments (importing only its module). None: every command gets its arguments.
    """
    parser = argparse.ArgumentParser(
        prog="gptground",
        description="Train and query multimodal grounding models.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    selected = _selected(argv) if argv is not None else None
    sub = parser.add_subparsers(dest="command", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in COMMANDS:
        *group, name = command.name.split()
        where = sub
        if group:  # a nested command: "data synth" under "data"
            if group[0] not in groups:
                holder = sub.add_parser(group[0], help=GROUPS[group[0]])
                groups[group[0]] = holder.add_subparsers(dest=f"{group[0]}_command", required=True)
            where = groups[group[0]]
        command_parser = where.add_parser(
            name, help=command.help, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        if argv is None or command is selected:
            _resolve(command.arguments)(command_parser)
        command_parser.set_defaults(command_spec=command)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message says all a user needs: printed in one line, no traceback."""
    from gptground.config import RecipeError
    from modalities import CheckpointNotFoundError, MediaError

    return (RecipeError, CheckpointNotFoundError, MediaError, FileNotFoundError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("GPTGROUND_LOG", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return int(_resolve(args.command_spec.run)(args) or 0)
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
