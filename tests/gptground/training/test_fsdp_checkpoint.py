"""ShardedFSDPStrategy's save and load, on CPU: the tiny stage-1 model wrapped as
Lightning's FSDPStrategy wraps it (FSDP1 over the LightningModule, LlamaDecoderLayer
units, ``use_orig_params=True``) in gloo processes.

Lightning's FSDPStrategy itself needs CUDA, so the strategy object is given the wrapped
model, optimizer and process group by hand; its save_checkpoint and load_checkpoint run
as they do in a Trainer. Two ranks train two steps and save; one and two ranks load, and
their trained weights and Adam state equal the saved ones bit for bit.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.trainer.states import TrainerFn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp.wrap import ModuleWrapPolicy
from training_fixtures import tiny_recipe
from transformers.models.llama.modeling_llama import LlamaDecoderLayer

from gptground.model.build import build_model
from gptground.model.trainable import apply_trainable
from gptground.training.fsdp_checkpoint import ShardedFSDPStrategy, saved_module_keys
from gptground.training.module import MODEL_PREFIX, GroundingLitModule

CKPT = "last.ckpt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup(rank: int, world_size: int, port: int, out: Path):
    """(strategy, wrapped module, optimizer, lit module) of a freshly built stage-1 model."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    recipe = tiny_recipe(1, out / "world", out / "runs")
    L.seed_everything(0)  # the same frozen (and initial trained) weights in every process
    model, _ = build_model(recipe.model)
    apply_trainable(model, recipe.model.trainable)
    lit = GroundingLitModule(model, recipe)
    lit._trainer = SimpleNamespace(state=SimpleNamespace(fn=TrainerFn.FITTING), ckpt_path=str(out / CKPT))
    wrapped = FSDP(lit, auto_wrap_policy=ModuleWrapPolicy({LlamaDecoderLayer}), use_orig_params=True,
                   device_id=torch.device("cpu"))  # Lightning passes the root device
    optimizer = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-2)
    env = LightningEnvironment()
    env.set_world_size(world_size)
    env.set_global_rank(rank)
    strategy = ShardedFSDPStrategy(cluster_environment=env)
    strategy.model, strategy._lightning_module, strategy.optimizers = wrapped, lit, [optimizer]
    return strategy, wrapped, optimizer, lit


def _batch(lit: GroundingLitModule, rank: int) -> dict:
    """Two samples of text and one image each, different per rank."""
    g = torch.Generator().manual_seed(rank)
    n = lit.model.modalities["image"].num_tokens
    patch = lit.model.patch_token_ids["image"]
    ids = torch.randint(5, 200, (2, n + 12), generator=g)
    ids[:, 2 : 2 + n] = patch
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone(),
            "media": {"image": torch.rand(2, 3, 64, 64, generator=g)},
            "media_index": {"image": torch.tensor([0, 1])}, "sample_ids": ["a", "b"]}


def _full_state(strategy, wrapped, optimizer, lit) -> dict:
    """Trained weights and the Adam state, whole, on rank 0 (a collective)."""
    trained = {MODEL_PREFIX + n for n in lit.trained_names}
    weights = {k: v.clone() for k, v in strategy.full_module_state_dict().items() if k in trained}
    # Not FSDP.optim_state_dict(full): on gloo it hands back exp_avg equal to exp_avg_sq.
    optim = get_optimizer_state_dict(wrapped, optimizer, options=StateDictOptions(full_state_dict=True))
    return {"weights": weights, "optim": optim["state"]}


def _save(rank: int, world_size: int, port: int, out: Path) -> None:
    strategy, wrapped, optimizer, lit = _setup(rank, world_size, port, out)
    for _ in range(2):
        optimizer.zero_grad()
        wrapped(_batch(lit, rank)).loss.backward()
        optimizer.step()
    checkpoint = {"state_dict": strategy.lightning_module_state_dict(),
                  "optimizer_states": [strategy.optimizer_state(optimizer)], "global_step": 2}
    lit.on_save_checkpoint(checkpoint)  # what Lightning's dump_checkpoint does last
    (out / CKPT).mkdir(exist_ok=True)  # an earlier checkpoint, replaced by the save
    strategy.save_checkpoint(checkpoint, out / CKPT)
    reference = _full_state(strategy, wrapped, optimizer, lit)
    if rank == 0:
        torch.save(reference, out / "reference.pt")
    dist.destroy_process_group()


def _load(rank: int, world_size: int, port: int, out: Path) -> None:
    strategy, wrapped, optimizer, lit = _setup(rank, world_size, port, out)
    metadata = strategy.load_checkpoint(out / CKPT)
    lit.on_load_checkpoint(metadata)  # the frozen fingerprint matches: no error
    loaded = _full_state(strategy, wrapped, optimizer, lit)
    if rank == 0:
        torch.save({"loaded": loaded, "global_step": metadata["global_step"]}, out / f"loaded-{world_size}.pt")
    dist.destroy_process_group()


def _spawn(fn, world_size: int, out: Path) -> None:
    mp.spawn(fn, args=(world_size, _free_port(), out), nprocs=world_size, join=True)


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    _spawn(_save, 2, out)
    return out


def test_the_sharded_folder_holds_only_what_trains_and_no_temporary(saved):
    reference = torch.load(saved / "reference.pt", weights_only=False)
    assert saved_module_keys(saved / CKPT) == set(reference["weights"])
    assert not any(k.startswith("model.decoder.model.layers.") for k in reference["weights"])
    assert (saved / CKPT / "meta.pt").is_file()
    assert sorted(p.name for p in saved.iterdir()) == [CKPT, "reference.pt"]  # no .tmp, no .old
    # Every parameter the batch reached has Adam state (the embeddings, the image adapter).
    assert any("image.adapter" in k for k in reference["optim"])


@pytest.mark.parametrize("world_size", [1, 2])
def test_loading_restores_trained_weights_and_adam_state_exactly(saved, world_size):
    _spawn(_load, world_size, saved)
    reference = torch.load(saved / "reference.pt", weights_only=False)
    loaded = torch.load(saved / f"loaded-{world_size}.pt", weights_only=False)
    assert loaded["global_step"] == 2
    assert _equal(loaded["loaded"]["weights"], reference["weights"])
    assert _equal(loaded["loaded"]["optim"], reference["optim"])
