"""Build modules without allocating their weights, then give them empty storage of one dtype.

A model whose weights are loaded right after it is built should never hold random initial
weights: at 7B those are 28 GB of fp32 written once and thrown away. Inside
``parameters_on_meta()`` every parameter a module registers lives on the meta device (shape
and dtype only, no memory, initialisers are no-ops); buffers stay real, so the ones that are
computed rather than saved (rotary frequencies, position ids) are correct. ``materialize``
then gives each parameter uninitialised CPU storage in the target dtype, ready to be filled
from a weights file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Parameters registered inside this block are moved to the meta device as they come.

    Each one is allocated for an instant by its module's constructor (one tensor at a time),
    then replaced. Tied parameters stay tied: a parameter already on meta is kept as is.
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def materialize(module: nn.Module, dtype: torch.dtype) -> None:
    """Give every meta parameter empty CPU storage: floating ones in ``dtype``, others as they are.

    A parameter shared by several modules (tied weights) gets one storage, shared again.
    The values are uninitialised: the caller fills every one (see ``meta_parameter_names``).
    """
    real: dict[int, nn.Parameter] = {}
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is None or param.device.type != "meta":
                continue
            if id(param) not in real:
                target = dtype if param.is_floating_point() else param.dtype
                real[id(param)] = nn.Parameter(torch.empty(param.shape, dtype=target), requires_grad=param.requires_grad)
            sub._parameters[name] = real[id(param)]


def meta_parameter_names(module: nn.Module) -> list[str]:
    """Names of the parameters still on the meta device (each shared one under every name)."""
    return [n for n, p in module.named_parameters(remove_duplicate=False) if p.device.type == "meta"]
