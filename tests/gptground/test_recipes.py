"""Every shipped recipe validates without building anything; reference stages fail fast here."""

from pathlib import Path

import pytest

from gptground.cli import main
from gptground.config import load_recipe
from gptground.pipeline import is_pipeline, load_pipeline

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
ALL = sorted(RECIPES.rglob("*.yaml"))


def test_recipes_exist():
    names = {p.relative_to(RECIPES).as_posix() for p in ALL}
    assert {"stage1.yaml", "stage2.yaml", "stage3.yaml", "demo.yaml"} <= names
    assert {"tiny/stage1.yaml", "tiny/stage2.yaml", "tiny/stage3.yaml"} <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_recipe_validates(path):
    if is_pipeline(str(path)):
        cfg = load_pipeline(str(path))
        for stage in cfg.stages:
            load_recipe(str(path.parent / stage.recipe))
    else:
        load_recipe(str(path))


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3", "groundinggpt7b"])
def test_reference_stage_stops_with_missing_checkpoint(stage, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["run", str(RECIPES / f"{stage}.yaml"), f"run.output_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not found" in err and ("`model.tokenizer`" in err or "`model.init_from`" in err)
    assert not list(tmp_path.rglob("metrics.csv"))  # nothing trained, no data read
