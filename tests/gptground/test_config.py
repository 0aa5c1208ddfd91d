"""Recipe loading: extends, interpolation, overrides, and errors that name key and file."""

from pathlib import Path

import pytest

from gptground.config import RecipeError, load_recipe, recipe_to_yaml


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def base(tmp_path):
    write(
        tmp_path / "base.yaml",
        "run:\n  name: base\n  seed: 3\noptim:\n  lr: 1e-3\n"
        "data:\n  max_length: ${model.decoder.tiny.max_position_embeddings}\n",
    )
    return tmp_path


def test_extends_interpolation_and_override(base):
    child = write(base / "child.yaml", "extends: base.yaml\nrun:\n  name: child\n")
    recipe = load_recipe(child, ["optim.lr=2e-5", "trainer.max_steps=7"])
    assert recipe.run.name == "child" and recipe.run.seed == 3
    assert recipe.optim.lr == 2e-5 and recipe.trainer.max_steps == 7
    assert recipe.data.max_length == recipe.model.decoder.tiny.max_position_embeddings


@pytest.mark.parametrize(
    "text, key",
    [
        ("optim:\n  lrr: 3\n", "optim.lrr"),
        ("trainer:\n  max_steps: ten\n", "trainer.max_steps"),
        ("data:\n  sources:\n    - name: a\n      pth: x.json\n", "pth"),
        ("wandb:\n  tags: 3\n", "wandb.tags"),
    ],
)
def test_bad_key_or_type_names_key_and_file(base, text, key):
    bad = write(base / "bad.yaml", "extends: base.yaml\n" + text)
    with pytest.raises(RecipeError) as e:
        load_recipe(bad)
    assert key in str(e.value) and "bad.yaml" in str(e.value)


def test_bad_override_names_command_line(base):
    with pytest.raises(RecipeError, match=r"command line.*data\.batch_size"):
        load_recipe(str(base / "base.yaml"), ["data.batch_size=many"])
    with pytest.raises(RecipeError, match="key=value"):
        load_recipe(str(base / "base.yaml"), ["data.batch_size"])


def test_out_of_range_values_fail(base):
    with pytest.raises(RecipeError, match="data.on_bad_record"):
        load_recipe(str(base / "base.yaml"), ["data.on_bad_record=maybe"])
    with pytest.raises(RecipeError, match="data.replay_ratio"):
        load_recipe(str(base / "base.yaml"), ["data.replay_ratio=1.5"])


def test_unknown_modality_and_cycle(base):
    with pytest.raises(RecipeError, match="model.modalities.smell"):
        load_recipe(str(base / "base.yaml"), ["model.modalities.smell.x=1"])
    write(base / "a.yaml", "extends: b.yaml\n")
    write(base / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(str(base / "a.yaml"))


def test_missing_file_and_resolved_yaml(base):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(str(base / "nope.yaml"))
    text = recipe_to_yaml(load_recipe(str(base / "base.yaml")))
    assert "max_length: 512" in text and "${" not in text
