"""Converters from published checkpoints to GPTGround model folders.

``convert_groundinggpt``: the released GroundingGPT-7B (``zwli/GroundingGPT``, LEGO layout).
"""

from gptground.convert.errors import ConversionError

__all__ = ["ConversionError"]
