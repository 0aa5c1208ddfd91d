"""Train the tiny stage-1 model a few AdamW steps in 2 gloo processes on CPU, wrapped as each
distributed strategy wraps it, and save what the model folder would hold before and after.

Used by test_strategy_freezing.py: one ``torch.multiprocessing.spawn`` runs every strategy in
turn (process start and imports cost far more than the steps), and rank 0 writes
``<out>/<kind>.pt`` = {"before": exported state, "after": exported state, "new_ids": ids}.
Kinds: ddp, fsdp (FSDP1 with Lightning's settings), fsdp2 (fully_shard per decoder layer,
then the root), deepspeed_stage_2 and deepspeed_stage_3 (DeepSpeed on its CPU accelerator).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from gptground.config import TrainerConfig, load_recipe
from gptground.model.build import build_model
from gptground.model.lora import merged_state_dict
from gptground.model.trainable import apply_trainable, param_groups
from gptground.training.trainer import build_strategy

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "tiny" / "stage1.yaml"
TINY = [
    "data.dir=unused",
    "model.decoder.tiny.hidden_size=32",
    "model.decoder.tiny.num_layers=2",
    "model.decoder.tiny.num_heads=2",
    "model.decoder.tiny.intermediate_size=64",
    "model.modalities.video.num_frames=4",
]
STEPS = 3
WEIGHT_DECAY = 0.1  # > 0: a decayed frozen row would move even with a zero gradient
SEED = 0


def tiny_stage1(*overrides: str):
    """The stage-1 GroundingModel of recipes/tiny/stage1.yaml at test size, trainability applied."""
    recipe = load_recipe(str(RECIPE), [*TINY, *overrides])
    torch.manual_seed(SEED)  # every rank builds the same weights, as Lightning's seeding makes them
    model, _ = build_model(recipe.model)
    apply_trainable(model, recipe.model.trainable)
    return model


def _batch(model, rank: int, step: int) -> dict[str, torch.Tensor]:
    """(2, 16) random ids of old tokens, every new-token id once in each row; labels = ids."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    new_ids = model.new_token_ids
    ids = torch.randint(0, int(new_ids.min()), (2, 16), generator=g)
    ids[:, 3 : 3 + len(new_ids)] = new_ids
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _wrap(kind: str, model):
    """``model`` wrapped as the strategy of ``trainer.strategy=<kind>`` wraps it."""
    if kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, **build_strategy(TrainerConfig(strategy="ddp"))._ddp_kwargs)
    if kind == "fsdp":
        from lightning.fabric.strategies.fsdp import _setup_activation_checkpointing
        from torch.distributed.fsdp import FullyShardedDataParallel

        # accelerator=gpu only so that the strategy object is built; the wrapping runs on CPU
        # (device_id names the CPU where Lightning passes the GPU's index).
        strategy = build_strategy(TrainerConfig(strategy="fsdp", accelerator="gpu"))
        wrapped = FullyShardedDataParallel(
            module=model, cpu_offload=strategy.cpu_offload, sharding_strategy=strategy.sharding_strategy,
            device_id=torch.device("cpu"), **strategy.kwargs,
        )
        _setup_activation_checkpointing(wrapped, strategy._activation_checkpointing_kwargs)
        return wrapped
    if kind == "fsdp2":
        from gptground.training.fsdp2 import shard_per_decoder_layer

        shard_per_decoder_layer(model)
        return model
    raise ValueError(kind)


def _train(kind: str, out: Path, rank: int) -> None:
    model = tiny_stage1()
    before = {k: v.clone() for k, v in merged_state_dict(model).items()}
    if kind.startswith("deepspeed"):
        after = _train_deepspeed(int(kind[-1]), model, rank)
    else:
        wrapped = _wrap(kind, model)
        # After wrapping, as Lightning calls configure_optimizers: fully_shard replaces the
        # parameters by sharded ones (DTensor), an optimizer made before would hold the old.
        optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=1e-2)
        for step in range(STEPS):
            wrapped(**_batch(model, rank, step)).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        full = get_model_state_dict(wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        after = None
        if rank == 0:
            fresh = tiny_stage1()
            fresh.load_state_dict(full)
            after = merged_state_dict(fresh)
    if rank == 0:
        torch.save({"before": before, "after": after, "new_ids": model.new_token_ids}, out / f"{kind}.pt")
    dist.barrier()


def _train_deepspeed(stage: int, model, rank: int) -> dict[str, torch.Tensor]:
    """STEPS steps under ``deepspeed.initialize`` with the config of Lightning's
    ``deepspeed_stage_<stage>`` strategy, as Lightning calls it; the exported weights after.

    ZeRO-3 partitions every parameter (frozen ones too): they are gathered for the export.
    """
    import argparse

    import deepspeed
    from lightning.pytorch.strategies import DeepSpeedStrategy

    config = {**DeepSpeedStrategy(stage=stage).config, "train_micro_batch_size_per_gpu": 1}
    optimizer = torch.optim.AdamW(param_groups(model, WEIGHT_DECAY), lr=1e-2)
    engine, *_ = deepspeed.initialize(
        args=argparse.Namespace(device_rank=rank), config=config, model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad], optimizer=optimizer,
        dist_init_required=False,
    )
    for step in range(STEPS):
        engine.backward(engine(**_batch(model, rank, step)).loss)
        engine.step()
    with deepspeed.zero.GatheredParameters(list(model.parameters())):  # a no-op below stage 3
        return {k: v.clone() for k, v in merged_state_dict(model).items()}


def worker(rank: int, world_size: int, port: int, kinds: list[str], out: str) -> None:
    # RANK/LOCAL_RANK/WORLD_SIZE as a launcher sets them (DeepSpeed reads them).
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        for kind in kinds:
            _train(kind, Path(out), rank)
    finally:
        dist.destroy_process_group()
