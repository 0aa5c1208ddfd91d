"""GPTGround: train and query multimodal grounding models.

The names users reach for first are exported here and imported on first use (PEP 562), so
``import gptground`` stays fast and imports no torch::

    from gptground import Grounder, load_recipe, Box, Span
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "Grounder": "gptground.api",
    "load_recipe": "gptground.config",
    "Box": "gptground.grounding",
    "Span": "gptground.grounding",
}
__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    from gptground.api import Grounder
    from gptground.config import load_recipe
    from gptground.grounding import Box, Span


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gptground' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
