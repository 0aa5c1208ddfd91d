"""``gptground run RECIPE``: what a recipe asks for, from the command line or Python."""

from __future__ import annotations

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
    print(f"run folder: {run_dir}")
    return run_dir
