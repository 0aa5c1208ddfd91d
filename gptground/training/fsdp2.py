"""FSDP2 (torch's ``fully_shard``) per decoder layer, as a ``configure_model`` under
Lightning's ModelParallelStrategy would apply it. Not yet a recipe strategy: that also
needs a full-state gather for the model folder and trained-state-only distributed
checkpoints (see ``fsdp_checkpoint``); the freezing tests use it to check FSDP2.

Each LlamaDecoderLayer is its own unit (its parameters are gathered for its forward and
backward, then freed), and the root unit holds the rest: the embeddings, final norm,
LM head and every modality. FSDP2 shards each parameter on its own (DTensor, dim 0), so a
unit may mix frozen and trainable parameters: only those that require grad are reduced
and stepped.
"""

from __future__ import annotations

from torch import nn
from torch.distributed.fsdp import fully_shard
from transformers.models.llama.modeling_llama import LlamaDecoderLayer


def shard_per_decoder_layer(model: nn.Module, mesh=None) -> nn.Module:
    """Apply ``fully_shard`` to every decoder layer, then to ``model`` (in place; returned).

    ``mesh``: the data-parallel DeviceMesh (None: all ranks of the default process group).
    """
    for module in model.modules():
        if isinstance(module, LlamaDecoderLayer):
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model
