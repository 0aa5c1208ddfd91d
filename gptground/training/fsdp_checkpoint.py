"""FSDP checkpoints that scale: sharded (torch distributed checkpoint), trained state only,
written atomically, and loadable onto another number of ranks.

Lightning's FSDPStrategy with ``state_dict_type="full"`` gathers every weight and Adam
moment on rank 0 for each save (~85 GB at 7B in stages 2/3). Sharded, every rank writes
its own shard in parallel, and a distributed checkpoint reshards on load. What the saved
module state holds is decided by ``GroundingLitModule.on_save_checkpoint`` (only what
trains); Lightning's sharded load asks for every key of the model, so loading is
overridden here to ask for the keys the checkpoint holds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.strategies.fsdp import (
    _METADATA_FILENAME,
    _distributed_checkpoint_load,
    _get_full_state_dict_context,
    _get_sharded_state_dict_context,
    _is_sharded_checkpoint,
)
from lightning.pytorch.trainer.states import TrainerFn
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.optimizer import load_sharded_optimizer_state_dict
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

from gptground.training.folder_checkpoint import save_folder_atomically
from gptground.training.safe_load import check_weights_only, load_weights_only

MODULE_KEY = "model"  # the module state inside a Lightning sharded checkpoint folder


class ShardedFSDPStrategy(FSDPStrategy):
    """FSDPStrategy saving sharded folders atomically and loading partial module states."""

    def __init__(self, **kwargs):
        super().__init__(state_dict_type="sharded", **kwargs)

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Any = None) -> None:
        """Every rank writes its shard into ``<path>.tmp``; rank 0 then renames it to ``path``."""
        save_folder_atomically(
            self, filepath, lambda tmp: super(ShardedFSDPStrategy, self).save_checkpoint(checkpoint, tmp, storage_options)
        )

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        """Load the module keys the checkpoint holds (and the optimizer state when fitting).

        A path that is not a sharded checkpoint (a full ``.ckpt`` file) goes to Lightning, once
        its pickle is checked to name nothing but plain data (see ``safe_load``).

        Raises:
            UnsafeCheckpointError: the checkpoint needs a Python global.
            ValueError: a remote (``scheme://``) checkpoint.
            KeyError: the checkpoint holds module keys this model does not have.
        """
        if "://" in str(checkpoint_path):
            raise ValueError(
                f"{checkpoint_path}: under FSDP a checkpoint is resumed from a local path "
                "(`trainer.resume_from`); copy it to this machine first"
            )
        path = Path(self.broadcast(checkpoint_path))
        if not _is_sharded_checkpoint(path):
            check_weights_only(path)  # Lightning reads a whole-model file with its own unpickler
            return super().load_checkpoint(path, True)
        saved = saved_module_keys(path)
        with _get_sharded_state_dict_context(self.model):
            current = self.model.state_dict()
            unknown = sorted(saved - current.keys())
            if unknown:
                raise KeyError(f"{path}: the checkpoint holds tensors this model lacks: {unknown[:5]}")
            module_state = {MODULE_KEY: {k: v for k, v in current.items() if k in saved}}
            _distributed_checkpoint_load(module_state, path)  # in place, into this rank's shards
            self.model.load_state_dict(module_state[MODULE_KEY], strict=False)
            if self.optimizers and self.lightning_module.trainer.state.fn == TrainerFn.FITTING:
                self._load_optimizers(path, module_state[MODULE_KEY])
        return load_weights_only(path / _METADATA_FILENAME)  # data only, whatever weights_only says

    def _load_optimizers(self, path: Path, module_state: dict) -> None:
        reader = FileSystemReader(path=path)
        for idx, optimizer in enumerate(self.optimizers):
            key = f"optimizer_{idx}"
            state = load_sharded_optimizer_state_dict(
                model_state_dict=module_state, optimizer_key=key, storage_reader=reader
            )
            optimizer.load_state_dict(FSDP.optim_state_dict_to_load(self.model, optimizer, state[key]))

    def full_module_state_dict(self) -> dict[str, torch.Tensor]:
        """The LightningModule's whole state gathered on rank 0 ({} elsewhere); a collective."""
        with _get_full_state_dict_context(self.model, world_size=self.world_size):
            return self.model.state_dict()


def saved_module_keys(path: str | os.PathLike) -> set[str]:
    """Module state keys a sharded checkpoint folder holds (DCP flattens ``model.<key>``)."""
    metadata = FileSystemReader(path=os.fspath(path)).read_metadata()
    prefix = MODULE_KEY + "."
    return {k[len(prefix):] for k in metadata.state_dict_metadata if k.startswith(prefix)}
