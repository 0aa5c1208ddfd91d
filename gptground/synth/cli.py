"""Command-line front of the generator: ``gptground data synth --out DIR [key=value ...]``.

The CLI owner adds the subcommand with :func:`add_synth_arguments` and calls
:func:`run_synth` with the parsed namespace.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gptground.synth.config import SynthConfig, SynthConfigError
from gptground.synth.generate import generate_world
from gptground.synth.world import SceneSamplingError
from gptground.synth.writer import WorldManifest


def add_synth_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the generator's arguments to ``parser`` (returned for chaining)."""
    parser.add_argument("--out", type=Path, default=Path("data/synth"),
                        help="world folder to write: media, annotations/, manifest.json (default: data/synth)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="SynthConfig overrides, e.g. scale=0.5 audio.span_grid=8 'video.fps=[8,10]'")
    parser.add_argument("--config", type=Path, help="YAML file of SynthConfig fields; overrides apply on top")
    parser.add_argument("--seed", type=int, help="shortcut for seed=N")
    parser.add_argument("--scale", type=float, help="shortcut for scale=X (multiplies train counts)")
    parser.add_argument("--workers", type=int, help="shortcut for workers=N (rendering processes)")
    parser.add_argument("--overwrite", action="store_true", help="replace a world already in the --out folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def build_synth_config(config_path: str | Path | None = None, overrides: Sequence[str] = ()) -> SynthConfig:
    """A validated SynthConfig from defaults, an optional YAML file, then ``key=value`` overrides.

    Raises:
        SynthConfigError: an unknown key, a value of the wrong type, or a value out of
            range; the message names the key (and the file).
    """
    schema = OmegaConf.structured(SynthConfig)
    try:
        layers = [OmegaConf.load(config_path)] if config_path is not None else []
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(schema, *layers)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        where = f" ({config_path})" if config_path is not None else ""
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SynthConfigError(f"{getattr(e, 'full_key', None) or 'config'}{where}: {first_line}") from e
    except ValueError as e:  # a malformed override such as 'scale' without '='
        if isinstance(e, SynthConfigError):
            raise
        raise SynthConfigError(f"overrides: {e}") from e


def run_synth(args: argparse.Namespace) -> int:
    """Generate the world the parsed ``args`` describe and print a summary.

    Returns:
        0 on success; 2 after printing ``error: ...`` for a bad config, an existing world
        without ``--overwrite``, or a config that leaves no room for a scene.
    """
    shortcuts = [f"{name}={getattr(args, name)}" for name in ("seed", "scale", "workers")
                 if getattr(args, name) is not None]
    try:
        config = build_synth_config(args.config, [*args.overrides, *shortcuts])
        manifest = generate_world(args.out, config, progress=not args.no_progress, overwrite=args.overwrite)
    except (SynthConfigError, SceneSamplingError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary(manifest))
    return 0


def summary(manifest: WorldManifest) -> str:
    """A table of annotation files and record counts, then skipped parts, for the terminal."""
    head = (f"world: {manifest.root} (seed {manifest.seed}, {manifest.seconds:.1f} s, "
            f"{manifest.samples_per_second:.0f} samples/s)")
    lines = [head]
    lines += [f"  stage {a.stage}  {a.task:<17} {a.split:<5} {a.records:>6}  {a.path}" for a in manifest.annotations]
    lines += [f"  skipped {what}: {why}" for what, why in manifest.skipped.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gptground.synth --out DIR ...`` (the same as ``gptground data synth``)."""
    parser = add_synth_arguments(argparse.ArgumentParser(prog="gptground data synth",
                                                         description="Generate the synthetic grounding world."))
    return run_synth(parser.parse_args(argv))
