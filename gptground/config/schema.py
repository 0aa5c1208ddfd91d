"""Typed recipe schema: one dataclass per concern.

Every field carries a one-line comment that doubles as documentation of the recipe key.
Recipes (YAML) are merged onto these dataclasses by ``gptground.config.load``, so a
misspelt key or a value of the wrong type fails before anything is built.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from typing import Any

from gptground.config.errors import RecipeError
from modalities.preprocess import DEFAULT, PREPROCESS_CHOICES, check_preprocess

_CHOICES = {
    "model.preprocess": PREPROCESS_CHOICES,
    "data.on_bad_record": ("skip", "fail"),
    "trainer.nan_policy": ("stop", "skip"),
    "wandb.mode": ("auto", "online", "offline"),
    "optim.schedule": ("cosine", "constant"),
}


def _check_choice(key: str, value: str) -> None:
    if value not in _CHOICES[key]:
        raise RecipeError(f"`{key}` must be one of {list(_CHOICES[key])}, got {value!r}")


def _check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise RecipeError(f"`{key}` must be {'>= 0' if allow_zero else '> 0'}, got {value}")


# Strategies Lightning runs on CUDA GPUs only (its FSDPStrategy and DeepSpeedStrategy).
GPU_ONLY_STRATEGIES = ("fsdp", "deepspeed")


def check_strategy(strategy: str, accelerator: str, cuda_available: bool = False) -> None:
    """One-line errors naming the keys, before Lightning fails with a traceback mid-setup.

    ``cuda_available`` decides ``trainer.accelerator=auto`` (the trainer passes the truth;
    the recipe's own validation leaves ``auto`` to it).
    """
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not cuda_available)
    if strategy.startswith(GPU_ONLY_STRATEGIES) and on_cpu:
        raise RecipeError(
            f"`trainer.strategy={strategy}` runs on CUDA GPUs only, but `trainer.accelerator={accelerator}`"
            f"{' and no GPU is visible' if accelerator == 'auto' else ''}: set `trainer.accelerator=gpu` on a "
            "GPU machine, or `trainer.strategy=ddp` to train on CPU"
        )
    if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise RecipeError(
            f"`trainer.strategy={strategy}` needs DeepSpeed, which is not installed: pip install 'gptground[deepspeed]'"
        )


@dataclass
class RunConfig:
    name: str = "gptground"  # run name: the run folder is <output_dir>/<name>/version_<k>
    output_dir: str = "lightning_logs"  # where runs write (checkpoints, metrics, resolved recipe)
    seed: int = 0  # seeds Python, NumPy, torch and DataLoader workers


@dataclass
class TinyDecoderConfig:
    """Sizes of a randomly initialised LLaMA decoder (tests and the embedded default)."""

    hidden_size: int = 64  # model width d_model
    num_layers: int = 2  # transformer blocks
    num_heads: int = 4  # attention heads (d_model must divide by it)
    intermediate_size: int = 172  # SwiGLU hidden width
    max_position_embeddings: int = 512  # longest sequence in tokens

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise RecipeError(
                f"`model.decoder.tiny.hidden_size` ({self.hidden_size}) must be divisible by "
                f"`model.decoder.tiny.num_heads` ({self.num_heads})"
            )


@dataclass
class DecoderConfig:
    path: str = "tiny"  # Hugging Face folder or hub id of a LLaMA/Vicuna model, or "tiny"
    tiny: TinyDecoderConfig = field(default_factory=TinyDecoderConfig)  # used when path == "tiny"
    attn_implementation: str = "sdpa"  # "sdpa" or "eager"; sdpa is required for 7B memory
    gradient_checkpointing: bool = False  # recompute decoder activations in backward


@dataclass
class LoraConfig:
    enabled: bool = False  # add LoRA adapters to the decoder's attention projections
    rank: int = 8  # r: low-rank width
    alpha: float = 16.0  # scaling numerator: delta = alpha / r * B @ A
    dropout: float = 0.0  # dropout on the LoRA input
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # module names


@dataclass
class TrainableConfig:
    """Which parts train in this stage. Encoders are always frozen."""

    adapters: bool = True  # per-modality adapters (MLP / Q-Formers / projections)
    decoder: bool = False  # every decoder weight except the embedding rows of new tokens
    new_token_embeddings: bool = True  # input-embedding rows of the added modality tokens
    lora: LoraConfig = field(default_factory=LoraConfig)  # LoRA on the decoder


@dataclass
class ModelConfig:
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    tokenizer: str = "builtin:tiny"  # tokenizer folder / hub id, or "builtin:tiny" (shipped)
    modalities: dict[str, Any] = field(default_factory=dict)  # name -> that modality's config
    # Start from a saved model folder: a path; or a run name (e.g. "stage1": the newest finished
    # <run.output_dir>/stage1/version_*/model); or "latest": the newest finished model folder of
    # any run under run.output_dir. "Finished": config.yaml and weights written; "newest": most
    # recently written weights. See gptground/config/init_from.py.
    init_from: str | None = None
    trainable: TrainableConfig = field(default_factory=TrainableConfig)
    # How media become model inputs, for every modality: "default" (this project's
    # transforms) or "groundinggpt" (the released GroundingGPT-7B's inputs: squashed video
    # frames at segment starts, audio channel 0, its image padding colour; see
    # modalities/preprocess.py). Saved in model folders; folders without it are "default".
    preprocess: str = DEFAULT

    def __post_init__(self) -> None:
        _check_choice("model.preprocess", self.preprocess)
        # Typed modality configs given in code receive the setting here; recipe mappings
        # receive it when they are typed (gptground.config.load.recipe_from_dict).
        self.modalities = {name: self._with_preprocess(name, mcfg) for name, mcfg in self.modalities.items()}

    def _with_preprocess(self, name: str, mcfg: Any) -> Any:
        if not (dataclasses.is_dataclass(mcfg) and hasattr(mcfg, "preprocess")):
            return mcfg
        return dataclasses.replace(mcfg, preprocess=modality_preprocess(name, mcfg.preprocess, self.preprocess))


def modality_preprocess(name: str, value: str | None, model_value: str) -> str:
    """The input pipeline of modality ``name``: ``model.preprocess``; the modality's own
    ``preprocess`` key (None = not set) may only repeat it."""
    key = f"model.modalities.{name}.preprocess"
    try:
        check_preprocess(value, key)
    except ValueError as e:
        raise RecipeError(str(e)) from e
    if value is not None and value != model_value:
        raise RecipeError(
            f"`{key}` is {value!r} but `model.preprocess` is {model_value!r}: the setting is one "
            "for the whole model; set `model.preprocess` only"
        )
    return model_value


@dataclass
class SourceConfig:
    name: str = "???"  # a name for logs; data-card name for real datasets
    path: str = "???"  # annotation file: JSON list or JSONL, local path or fsspec URL
    weight: float = 1.0  # relative sampling weight inside its group (sources or replay)
    card: str | None = None  # data card in data_cards/ that documents it


@dataclass
class DataConfig:
    dir: str = "."  # base folder of a dataset, for `${data.dir}/...` in paths below
    template: str = "groundinggpt"  # conversation template name
    grounding_format: str = "groundinggpt"  # how boxes and spans are written in answers
    max_length: int = 2048  # tokens per sample after placeholder expansion
    roots: dict[str, str] = field(default_factory=dict)  # record key -> media root (fsspec)
    sources: list[SourceConfig] = field(default_factory=list)  # this stage's training data
    replay: list[SourceConfig] = field(default_factory=list)  # earlier stages' data to replay
    replay_ratio: float = 0.0  # share of each epoch drawn from `replay` (0 = none)
    val_sources: list[SourceConfig] = field(default_factory=list)  # validation data
    samples_per_epoch: int | None = None  # draws per epoch; None = each record once + replay share
    batch_size: int = 8  # samples per device per step
    # Each step's batch from one source where possible (less padding: a source's samples
    # have similar lengths); see MixtureSampler's group_batch_size.
    group_by_source: bool = False
    num_workers: int = 0  # DataLoader worker processes
    on_bad_record: str = "skip"  # "skip" (count and log) or "fail" at the first bad record
    feature_cache: str | None = None  # folder of cached frozen-encoder features (None = off)

    def __post_init__(self) -> None:
        _check_choice("data.on_bad_record", self.on_bad_record)
        _check_positive("data.max_length", self.max_length)
        _check_positive("data.batch_size", self.batch_size)
        if not 0.0 <= self.replay_ratio < 1.0:
            raise RecipeError(f"`data.replay_ratio` must be in [0, 1), got {self.replay_ratio}")
        if self.replay_ratio > 0 and not self.replay:
            raise RecipeError("`data.replay_ratio` > 0 needs `data.replay` sources")


@dataclass
class OptimConfig:
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW betas
    warmup_ratio: float = 0.03  # share of total steps spent in linear warmup
    schedule: str = "cosine"  # "cosine" decay to min_lr_ratio * lr, or "constant"
    min_lr_ratio: float = 0.0  # final learning rate as a share of the peak
    # One fused AdamW kernel over all tensors (CPU and CUDA) instead of a Python loop over
    # them: 3 vs 13 ms per optimizer step for the tiny stage-2 model on 2 CPU threads.
    fused: bool = True

    def __post_init__(self) -> None:
        _check_choice("optim.schedule", self.schedule)
        _check_positive("optim.lr", self.lr)
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise RecipeError(f"`optim.warmup_ratio` must be in [0, 1), got {self.warmup_ratio}")


@dataclass
class CheckpointConfig:
    save_last: bool = True  # keep last.ckpt for resuming
    monitor: str | None = "val/loss"  # metric that picks the best checkpoint (None: last only)
    mode: str = "min"  # "min" or "max" of the monitored metric
    every_n_train_steps: int | None = None  # also save every N optimizer steps


@dataclass
class TrainerConfig:
    accelerator: str = "auto"  # "cpu", "gpu", "auto"
    devices: Any = "auto"  # int, list of ids, or "auto"
    num_nodes: int = 1  # machines; Lightning reads the cluster environment
    strategy: str = "auto"  # "auto", "ddp", "fsdp", "deepspeed_stage_2", ...
    precision: str = "auto"  # "auto" = bf16-mixed on GPU, 32-true on CPU
    max_steps: int = -1  # optimizer steps; -1 = run max_epochs
    max_epochs: int = 1  # epochs when max_steps is -1
    accumulate_grad_batches: int = 1  # micro-batches per optimizer step
    gradient_clip_val: float | None = 1.0  # clip the gradient norm (None = off)
    val_check_interval: Any = 1.0  # float share of an epoch, or int steps
    limit_val_batches: Any = 1.0  # float share or int count of validation batches
    log_every_n_steps: int = 10  # how often metrics are logged
    nan_policy: str = "stop"  # a NaN/inf loss or gradient: "stop" the run, or "skip" the batch and count it
    # Under nan_policy=skip, the run still stops past either limit (see training/nonfinite.py):
    nan_skip_max_consecutive: int = 5  # non-finite batches allowed in a row
    nan_skip_max_fraction: float = 0.1  # share of the last nan_skip_window batches allowed non-finite
    nan_skip_window: int = 100  # batches the fraction is counted over
    resume_from: str | None = None  # a .ckpt (file or folder) to resume exactly, or "last": the newest
    # <output_dir>/<name>/version_*/checkpoints/last.ckpt (the resumed run writes a new version)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    enable_progress_bar: bool = True  # Lightning's progress bar during fit

    def __post_init__(self) -> None:
        _check_choice("trainer.nan_policy", self.nan_policy)
        _check_positive("trainer.nan_skip_max_consecutive", self.nan_skip_max_consecutive, allow_zero=True)
        _check_positive("trainer.nan_skip_window", self.nan_skip_window)
        if not 0 <= self.nan_skip_max_fraction < 1:
            raise RecipeError(f"`trainer.nan_skip_max_fraction` must be in [0, 1), got {self.nan_skip_max_fraction}")
        _check_positive("trainer.accumulate_grad_batches", self.accumulate_grad_batches)
        _check_positive("trainer.num_nodes", self.num_nodes)
        if self.accelerator != "auto":  # auto: decided with the hardware in build_strategy
            check_strategy(self.strategy, self.accelerator)


@dataclass
class WandbConfig:
    enabled: bool = False  # log to Weights & Biases through Lightning's WandbLogger
    project: str = "gptground"  # W&B project
    name: str | None = None  # run name (default: run.name)
    group: str | None = None  # group runs, e.g. the stages of one model
    tags: list[str] = field(default_factory=list)  # free tags
    mode: str = "auto"  # "auto" = offline without WANDB_API_KEY (or if WANDB_MODE says so)

    def __post_init__(self) -> None:
        _check_choice("wandb.mode", self.mode)


@dataclass
class RecipeConfig:
    """A whole recipe: what to build, what data, how to train and track."""

    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
