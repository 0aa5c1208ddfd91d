"""The `gptground` and `lightning` commands: help, recipe routing, scripts to `fabric run`."""

import subprocess
import sys

import pytest

from gptground.cli import build_parser, lightning_main


def test_help_lists_commands_and_examples(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for command in ("run", "eval", "score", "ground", "data"):
        assert command in out
    assert "gptground run recipes/demo.yaml" in out


def test_lightning_run_recipe_goes_to_gptground(monkeypatch):
    seen = []
    monkeypatch.setattr("gptground.cli.main", lambda argv: seen.append(argv) or 0)
    assert lightning_main(["run", "recipes/stage3.yaml", "trainer.devices=2"]) == 0
    assert seen == [["run", "recipes/stage3.yaml", "trainer.devices=2"]]


def test_lightning_usage_without_a_command(capsys):
    assert lightning_main([]) == 2
    assert "lightning run RECIPE.yaml" in capsys.readouterr().err
    assert lightning_main(["--help"]) == 0


def test_lightning_run_script_is_handed_to_fabric(tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("print('hello from fabric')\n")
    code = "import sys; from gptground.cli import lightning_main; sys.exit(lightning_main(['run', sys.argv[1]]))"
    out = subprocess.run([sys.executable, "-c", code, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "hello from fabric" in out.stdout
