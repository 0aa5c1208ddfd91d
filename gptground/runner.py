"""``gptground run RECIPE``: what a recipe asks for, from the command line or Python."""

from __future__ import annotations

from gptground.config import load_recipe
from gptground.training.run import train


def run_recipe(path: str, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """Validate the recipe (before anything is built), train, and print the run folder."""
    recipe = load_recipe(path, overrides)
    run_dir = train(recipe)
    print(f"run folder: {run_dir}")
    return run_dir
