"""A pipeline recipe: synthesise data, train stages in a row, evaluate, summarise.

``recipes/demo.yaml`` is one: the embedded default. Its ``pipeline`` section is typed
here; each stage is an ordinary stage recipe, chained through ``model.init_from``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gptground.config import RecipeError, load_recipe
from gptground.data.features import FeatureStore
from gptground.data.readers import read_records
from gptground.eval.metrics import rec_accuracy, temporal_grounding
from gptground.eval.queries import items_from_records, task_values
from gptground.eval.run import evaluate, write_outputs
from gptground.grounding import Box, Span
from gptground.model.build import load_model
from gptground.processor import Processor
from gptground.synth.cli import build_synth_config
from gptground.synth.generate import generate_world
from gptground.training.run import MODEL_DIR, train

PIPELINE_KEY = "pipeline"


@dataclass
class StageConfig:
    recipe: str = "???"  # stage recipe, relative to the pipeline file
    steps: int = 100  # optimizer steps (multiplied by `pipeline.scale`)
    overrides: list[str] = field(default_factory=list)  # key=value overrides of this stage


@dataclass
class EvalTaskConfig:
    task: str = "???"  # rec | video_tg | audio_tg | sound_loc
    data: str = "???"  # annotation file with targets, relative to the data folder


@dataclass
class PipelineEvalConfig:
    tasks: list[EvalTaskConfig] = field(default_factory=list)  # what to evaluate after training
    limit: int | None = None  # evaluate the first N items of each task (None = all)
    batch_size: int = 32  # questions answered together
    max_new_tokens: int = 40  # the most tokens per answer
    pictures: int = 3  # pictures drawn per task


@dataclass
class PipelineConfig:
    name: str = "demo"  # run folder: <output_dir>/<name>/version_<k>
    output_dir: str = "lightning_logs"  # where runs write
    data_dir: str = "data/synth"  # the synthetic world (generated if absent)
    scale: float = 1.0  # one knob for size: multiplies synthetic train data and stage steps
    synth: dict = field(default_factory=dict)  # SynthConfig fields (see `gptground data synth`)
    stages: list[StageConfig] = field(default_factory=list)  # stage recipes, trained in order
    overrides: list[str] = field(default_factory=list)  # key=value overrides of every stage
    eval: PipelineEvalConfig = field(default_factory=PipelineEvalConfig)

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise RecipeError(f"`pipeline.scale` must be > 0, got {self.scale}")
        if not self.stages:
            raise RecipeError("`pipeline.stages` must name at least one stage recipe")


def is_pipeline(path: str) -> bool:
    return PIPELINE_KEY in (OmegaConf.load(path) or {})


def load_pipeline(path: str, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Validate a pipeline recipe (unknown keys and wrong types name the key)."""
    try:
        raw = OmegaConf.load(path)
        extra = set(raw) - {PIPELINE_KEY}
        if extra:
            raise RecipeError(f"{path}: a pipeline recipe has only a `pipeline` section, found {sorted(extra)}")
        merged = OmegaConf.merge(OmegaConf.structured(PipelineConfig), raw[PIPELINE_KEY])
        bad = [o for o in overrides if not o.startswith(f"{PIPELINE_KEY}.") or "=" not in o]
        if bad:
            raise RecipeError(f"command line: pipeline overrides are `pipeline.KEY=VALUE`, got {bad}")
        cli = OmegaConf.from_dotlist([o[len(PIPELINE_KEY) + 1 :] for o in overrides])
        merged = OmegaConf.merge(merged, cli)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise RecipeError(f"{path}: bad recipe key `{PIPELINE_KEY}.{key}`: {str(e).splitlines()[0]}") from e


def ensure_world(cfg: PipelineConfig) -> None:
    """Generate the synthetic world unless the data folder already holds the same one."""
    scale = cfg.scale * cfg.synth.get("scale", 1.0)
    synth = build_synth_config(None, _dotlist(cfg.synth) + [f"scale={scale}"])
    wanted = json.loads(json.dumps(dataclasses.asdict(synth)))
    manifest = Path(cfg.data_dir) / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("config") == wanted:
        print(f"synthetic world: reusing {cfg.data_dir}", flush=True)
        return
    generate_world(cfg.data_dir, synth, progress=True, overwrite=manifest.exists())


def _dotlist(mapping: dict, prefix: str = "") -> list[str]:
    """Nested mapping -> ``a.b=value`` overrides."""
    out = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            out += _dotlist(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={value}")
    return out


def _stage_overrides(cfg: PipelineConfig, stage: StageConfig, run_dir: str, previous: str | None) -> list[str]:
    steps = max(1, round(stage.steps * cfg.scale))
    name = Path(stage.recipe).stem
    out = [f"data.dir={cfg.data_dir}", f"run.output_dir={run_dir}", f"run.name={name}", f"trainer.max_steps={steps}"]
    if previous:
        out.append(f"model.init_from={previous}")
    return out + list(cfg.overrides) + list(stage.overrides)


def run_pipeline(path: str, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """Run a pipeline recipe; returns its run folder."""
    cfg = load_pipeline(path, overrides)
    base = Path(path).parent
    recipes = [load_recipe(str(base / s.recipe), _stage_overrides(cfg, s, "<check>", None)) for s in cfg.stages]
    run_dir = _new_run_dir(cfg)
    started = time.perf_counter()
    ensure_world(cfg)
    previous = None
    for stage, recipe in zip(cfg.stages, recipes):
        recipe = load_recipe(str(base / stage.recipe), _stage_overrides(cfg, stage, run_dir, previous))
        previous = os.path.join(train(recipe), MODEL_DIR)
    metrics = evaluate_world(cfg, previous, recipes[-1], run_dir)
    seconds = time.perf_counter() - started
    print(summary_table(metrics, seconds))
    return run_dir


def _new_run_dir(cfg: PipelineConfig) -> str:
    root = Path(cfg.output_dir) / cfg.name
    root.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()]
    run_dir = root / f"version_{max(taken, default=-1) + 1}"
    run_dir.mkdir()
    return str(run_dir)


def evaluate_world(cfg: PipelineConfig, model_dir: str, recipe, run_dir: str) -> dict:
    """Evaluate the final model on each task's held-out split; write metrics and pictures."""
    model, tokenizer, _ = load_model(model_dir)
    d = recipe.data
    features = FeatureStore(d.feature_cache, model.modalities).load() if d.feature_cache else None
    processor = Processor(tokenizer, model.modalities, d.template, d.max_length, d.roots, features=features)
    results = {}
    for task_cfg in cfg.eval.tasks:
        records = read_records(os.path.join(cfg.data_dir, task_cfg.data), on_error="fail")
        items = items_from_records(records, task_cfg.task, d.roots)[: cfg.eval.limit]
        metrics, predictions = evaluate(
            model, processor, items, task_cfg.task, d.grounding_format, cfg.eval.batch_size, cfg.eval.max_new_tokens
        )
        out = os.path.join(run_dir, "eval", task_cfg.task)
        write_outputs(predictions, metrics, out)
        draw_pictures(task_cfg.task, items, predictions, os.path.join(out, "pictures"), cfg.eval.pictures)
        results[task_cfg.task] = {**metrics, "chance": chance_level(items, task_cfg.task)}
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def chance_level(items, task: str, trials: int = 20, seed: int = 0) -> dict[str, float]:
    """Each figure when every answer is another item's truth (a shuffled pairing).

    This is the score of a model that knows the distribution of answers but not the media.
    """
    rng = random.Random(seed)
    truths = [list(item.truths) for item in items]
    boxes = task_values(task) == "boxes"
    totals: dict[str, float] = {}
    for _ in range(trials):
        shuffled = truths[:]
        rng.shuffle(shuffled)
        guesses = [[t[0]] for t in shuffled]
        m = rec_accuracy(guesses, truths) if boxes else temporal_grounding(guesses, truths)
        for k, v in m.items():
            if k not in ("n", "parse_failures"):
                totals[k] = totals.get(k, 0.0) + v / trials
    return {k: round(v, 4) for k, v in totals.items()}


def draw_pictures(task: str, items, predictions, out: str, count: int) -> None:
    from gptground import viz

    os.makedirs(out, exist_ok=True)
    drawable = [(item, p) for item, p in zip(items, predictions) if p.error is None]  # others: media unreadable
    for item, p in drawable[:count]:
        media = item.query.media
        if task_values(task) == "boxes":
            picture = viz.box_picture(media["image"], [Box(*v) for v in p.values], [Box(*t) for t in p.truths])
        elif "video" in media:
            picture = viz.video_timeline(media["video"], [Span(*v) for v in p.values], [Span(*t) for t in p.truths])
        else:
            picture = viz.audio_timeline(media["audio"], [Span(*v) for v in p.values], [Span(*t) for t in p.truths])
        picture.save(os.path.join(out, f"{p.id}.png"))


def summary_table(metrics: dict, seconds: float) -> str:
    lines = [f"{'task':<12}{'figure':<10}{'value':>8}{'chance':>8}{'n':>6}"]
    for task, m in metrics.items():
        for name, chance in m["chance"].items():
            lines.append(f"{task:<12}{name:<10}{m[name]:>8.3f}{chance:>8.3f}{m['n']:>6}")
    lines.append(f"wall time: {seconds / 60:.1f} min")
    return "\n".join(lines)
