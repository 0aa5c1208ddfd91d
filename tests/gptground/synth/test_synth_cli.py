"""The generator's argparse front: add_synth_arguments + run_synth."""

from __future__ import annotations

import argparse
from dataclasses import asdict

import yaml
from synth_fixtures import tiny_config

from gptground.synth import read_manifest
from gptground.synth.cli import add_synth_arguments, main, run_synth


def _tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(asdict(tiny_config())))
    return path


def test_run_synth_from_a_parser_with_shortcuts_and_overrides(tmp_path, capsys):
    parser = add_synth_arguments(argparse.ArgumentParser())
    out = tmp_path / "world"
    args = parser.parse_args(["--out", str(out), "audio.span_grid=4", "--config", str(_tiny_yaml(tmp_path)),
                              "--seed", "5", "--no-progress"])
    assert run_synth(args) == 0
    manifest = read_manifest(out)
    assert manifest.seed == 5 and manifest.config["audio"]["span_grid"] == 4
    printed = capsys.readouterr().out
    assert "annotations/stage2/rec.test.jsonl" in printed and "samples/s" in printed


def test_main_reports_bad_keys_and_existing_worlds(tmp_path, capsys):
    out = ["--out", str(tmp_path / "w")]
    assert main([*out, "video.fpss=3"]) == 2
    assert "video.fpss" in capsys.readouterr().err
    tiny = str(_tiny_yaml(tmp_path))
    assert main([*out, "--config", tiny, "--no-progress"]) == 0
    assert main([*out, "--config", tiny, "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*out, "--config", tiny, "--no-progress", "--overwrite"]) == 0
