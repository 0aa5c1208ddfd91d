"""A cheap fingerprint of the frozen weights a run started from, checked on resume.

A checkpoint holds only what trains (see ``trained_state``); on resume the frozen weights
come from building the model again from the recipe. If the decoder folder, an encoder
checkpoint, ``model.init_from`` or the seed of a random init changed in between, the
resumed run would silently train on other weights. The fingerprint catches that: per
frozen tensor its shape, dtype and a checksum of a strided sample of its elements, taken
once when the model is built, before any strategy wraps or shards it.

A sample is enough to tell two checkpoints or two random inits apart (they differ almost
everywhere) while reading ~``SAMPLES`` elements per tensor: milliseconds for 7B weights,
also memory-mapped ones. It does not catch an edit of a few elements between samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

import torch

from gptground.config import ModelConfig

SAMPLES = 4096  # elements read per tensor (plus the last one)
SHOWN = 8  # changed tensor names listed in an error


class FrozenWeightsChangedError(RuntimeError):
    """The frozen weights (or what trains) differ from those the checkpoint was trained with."""


def tensor_fingerprint(t: torch.Tensor) -> str:
    """"<shape>|<dtype>|<sha256 of a strided sample, 16 hex digits>" of one tensor."""
    flat = t.detach().reshape(-1)  # a view for the contiguous weights of a model
    stride = max(1, flat.numel() // SAMPLES)
    sample = flat[::stride]
    if flat.numel():
        sample = torch.cat([sample, flat[-1:]])
    raw = sample.cpu().contiguous().view(torch.uint8).numpy().tobytes()  # the bits, any dtype
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return f"{tuple(t.shape)}|{str(t.dtype).removeprefix('torch.')}|{digest}"


def fingerprint(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """name -> ``tensor_fingerprint`` for every tensor."""
    return {name: tensor_fingerprint(t) for name, t in tensors.items()}


def frozen_source(cfg: ModelConfig) -> dict[str, str]:
    """Where the frozen weights come from: the recipe's ``model.*`` keys except what trains.

    Dotted recipe key -> value (``model.decoder.path``, ``model.init_from``, each
    ``model.modalities.<name>.<encoder key>`` ...), for the error message on a mismatch.
    """
    section = dataclasses.asdict(cfg)
    section.pop("trainable")
    return dict(_flatten(section, "model"))


def _flatten(value, key: str):
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(v, f"{key}.{k}")
    else:
        yield key, str(value)


def check_frozen(saved: Mapping, current: Mapping, checkpoint: str) -> None:
    """Refuse to resume when the frozen weights or the trained names differ.

    Args:
        saved: the record in the checkpoint ({"trained", "frozen", "source"}).
        current: the same record of the model built now.
        checkpoint: the checkpoint's path, for the message.

    Raises:
        FrozenWeightsChangedError: naming the tensors that differ and the recipe keys that
            say where the frozen weights came from, then and now.
    """
    trained_diff = _name_diff(set(saved["trained"]), set(current["trained"]))
    if trained_diff:
        raise FrozenWeightsChangedError(
            f"{checkpoint} was trained with other parameters trainable ({trained_diff}); "
            "resume with the recipe's `model.trainable` (and LoRA settings) of that run"
        )
    old, new = saved["frozen"], current["frozen"]
    changed = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
    changed += sorted(f"{k} (not in the model now)" for k in old.keys() - new.keys())
    changed += sorted(f"{k} (new)" for k in new.keys() - old.keys())
    if not changed:
        return
    shown = ", ".join(changed[:SHOWN]) + (f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else "")
    raise FrozenWeightsChangedError(
        f"the frozen weights differ from those {checkpoint} was trained with: {len(changed)} "
        f"tensors changed ({shown}). {_source_diff(saved['source'], current['source'])} "
        "A checkpoint holds only what trains; resume with the same frozen weights "
        "(decoder, encoders, `model.init_from`, `run.seed` for random ones)."
    )


def _name_diff(saved: set[str], current: set[str]) -> str:
    parts = []
    if saved - current:
        parts.append(f"trained then, not now: {sorted(saved - current)[:SHOWN]}")
    if current - saved:
        parts.append(f"trained now, not then: {sorted(current - saved)[:SHOWN]}")
    return "; ".join(parts)


def _source_diff(saved: Mapping[str, str], current: Mapping[str, str]) -> str:
    keys = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    if not keys:
        return f"The recipe names the same sources (`model.decoder.path`={current.get('model.decoder.path')!r})."
    return "Recipe keys that changed: " + ", ".join(
        f"`{k}` {saved.get(k)!r} -> {current.get(k)!r}" for k in keys
    ) + "."


def frozen_record(model: torch.nn.Module, cfg: ModelConfig, trained: set[str]) -> dict:
    """{"trained": names, "frozen": fingerprint of every other state tensor, "source": keys}.

    Call it on the built, unwrapped model (names as in ``model.state_dict()``).
    """
    state = model.state_dict()
    return {
        "trained": sorted(trained),
        "frozen": fingerprint({k: v for k, v in state.items() if k not in trained}),
        "source": frozen_source(cfg),
    }
