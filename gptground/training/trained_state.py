"""What a training checkpoint must hold: the state that training changes, and nothing frozen.

A stage-1 run trains a few million parameters next to a frozen 7B decoder; saving the
whole model would write 27 GB per checkpoint. The rule is read off the model itself
(``requires_grad`` and the module tree), never from a list of names, so it holds whatever
the recipe freezes and however a part is split into parameters.
"""

from __future__ import annotations

from torch import nn


def trained_state_names(model: nn.Module) -> set[str]:
    """``state_dict`` keys of ``model`` that training can change.

    These are the parameters that require grad, and the persistent buffers of every module
    whose nearest parameter-holding ancestor (itself included) holds a parameter that
    requires grad. Why the buffer rule is right: a buffer changes only in its own module's
    forward (running statistics such as ``FeatureStandardizer``'s mean and variance, or a
    norm's running mean), and the recipe freezes or trains whole parts (an adapter, an
    encoder), so a buffer belongs to the part around it. A parameter-free module (the
    standardizer) takes the part of the nearest ancestor that has parameters (its adapter).
    A part with no trainable parameter does not update its buffers: encoders are kept in
    eval mode by ``Modality``, and the adapters' statistics update only when the adapter
    trains (see ``QFormerAdapter``). Erring the other way costs only bytes, never
    exactness: a buffer of a trained part that never changes is saved needlessly.
    """
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    trains = _parts_that_train(model)
    for module_name, module in model.named_modules():
        if not trains[module_name]:
            continue
        for buffer_name in module._buffers:
            if buffer_name in module._non_persistent_buffers_set or module._buffers[buffer_name] is None:
                continue
            names.add(f"{module_name}.{buffer_name}" if module_name else buffer_name)
    return names


def _parts_that_train(model: nn.Module) -> dict[str, bool]:
    """Module name -> whether its nearest parameter-holding ancestor (or itself) trains."""
    result: dict[str, bool] = {}

    def visit(name: str, module: nn.Module, inherited: bool) -> None:
        params = list(module.parameters())  # recursive: a container holds its children's
        trains = any(p.requires_grad for p in params) if params else inherited
        result[name] = trains
        for child_name, child in module.named_children():
            visit(f"{name}.{child_name}" if name else child_name, child, trains)

    visit("", model, False)
    return result
