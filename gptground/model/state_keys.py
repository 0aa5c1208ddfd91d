"""Module paths as state-dict keys name them."""

from __future__ import annotations

import re

# Module-path parts that FSDP and activation checkpointing insert and full state dicts drop.
_WRAPPERS = re.compile(r"(_fsdp_wrapped_module|_checkpoint_wrapped_module)\.")


def state_key_prefix(module_path: str) -> str:
    """The key prefix of a module's entries in a full state dict: ``"a.b."`` (``""`` at the root)."""
    path = _WRAPPERS.sub("", module_path)
    return f"{path}." if path else ""
