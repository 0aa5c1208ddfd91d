"""The synthetic grounding world: shapes in images and videos, tones in sounds.

``generate_world(out_dir, SynthConfig())`` writes media and GroundingGPT-format
annotation files for the three training stages, with train/val/test splits; see
``data_cards/synthetic_world.md`` for what the world contains and its conventions.
"""

from gptground.synth.cli import add_synth_arguments, build_synth_config, run_synth
from gptground.synth.config import (
    SPLITS,
    STAGE_TASKS,
    AudioWorldConfig,
    ImageWorldConfig,
    SynthConfig,
    SynthConfigError,
    TaskCounts,
    VideoWorldConfig,
)
from gptground.synth.generate import generate_world
from gptground.synth.writer import (
    AnnotationFile,
    ManifestError,
    WorldManifest,
    read_jsonl,
    read_manifest,
)

__all__ = [
    "SPLITS",
    "STAGE_TASKS",
    "AnnotationFile",
    "AudioWorldConfig",
    "ImageWorldConfig",
    "ManifestError",
    "SynthConfig",
    "SynthConfigError",
    "TaskCounts",
    "VideoWorldConfig",
    "WorldManifest",
    "add_synth_arguments",
    "build_synth_config",
    "generate_world",
    "read_jsonl",
    "read_manifest",
    "run_synth",
]
