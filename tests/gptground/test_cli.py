"""The `gptground` and `lightning` commands: help, recipe routing, scripts to `fabric run`."""

import subprocess
import sys

import pytest

from gptground.cli import COMMANDS, build_parser, lightning_main


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


HEAVY = ("torch", "lightning", "transformers")


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        *([*command.name.split(), "--help"] for command in COMMANDS),  # a command added later is checked too
        ["eval"],  # an argument error: the required arguments are missing
        ["ground", "m", "x.png"],
        ["nope"],
    ],
)
def test_help_and_argument_errors_import_no_torch(argv):
    """The parser is cheap: a command's arguments are defined without heavy imports."""
    code = (
        "import sys\nfrom gptground.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    status, loaded = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(status) == (0 if "--help" in argv else 2), out.stderr
    assert loaded == "[]", f"gptground {' '.join(argv)} imported {loaded}"


def test_every_command_defines_its_arguments_and_runner():
    from gptground.cli import _resolve

    parser = build_parser()  # every command's arguments
    for command in COMMANDS:
        assert callable(_resolve(command.arguments)) and callable(_resolve(command.run))
    args = parser.parse_args(["score", "p.jsonl", "--task", "rec"])
    assert args.command_spec.name == "score" and args.predictions == "p.jsonl"
    args = parser.parse_args(["data", "synth", "--out", "w"])
    assert args.command_spec.name == "data synth" and str(args.out) == "w"
