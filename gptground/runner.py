"""``gptground run RECIPE``: what a recipe asks for, from the command line or Python."""

from __future__ import annotations

import sys

from gptground.config import load_recipe
from gptground.pipeline import is_pipeline, run_pipeline
from gptground.training.run import train


def run_recipe(path: str, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """Validate the recipe (before anything is built), run it, and print the run folder.

    A stage recipe trains one stage; a pipeline recipe (a `pipeline` section, such as
    recipes/demo.yaml) synthesises data, trains its stages in a row and evaluates.
    """
    if is_pipeline(path):
        run_dir = run_pipeline(path, overrides)
    else:
        run_dir = train(load_recipe(path, overrides))
    # The promised last line: what was written to stderr comes out before it, and it is
    # flushed at once (stdout into a pipe or a file is block-buffered).
    sys.stderr.flush()
    print(f"run folder: {run_dir}", flush=True)
    return run_dir
