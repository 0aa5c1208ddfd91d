"""Grounding values and the text formats that carry them.

``Box`` (pixels of the original image) and ``Span`` (seconds) are what the library passes
around; a ``GroundingFormat`` writes them the way a given model system does and parses them
back from model output, reporting instead of raising on bad output::

    from gptground.grounding import Box, format_boxes, parse
    text = "The cat " + format_boxes([Box(10, 20, 110, 220)], image_size=(640, 480))
    parse(text, image_size=(640, 480)).phrases[0].boxes
"""

from gptground.grounding.api import format_boxes, format_span, parse, parse_boxes, parse_spans
from gptground.grounding.format import GroundingFormat, UnsupportedNotationError
from gptground.grounding.kosmos2 import GROUNDING_PROMPT
from gptground.grounding.minigptv2 import TASK_IDENTIFIERS, add_task_identifier, strip_task_identifier
from gptground.grounding.padding import (
    from_padded_unit,
    from_unit,
    padding_offset,
    square_side,
    to_padded_unit,
    to_unit,
)
from gptground.grounding.registry import (
    DEFAULT_FORMAT,
    UnknownFormatError,
    available_formats,
    get_format,
    register_format,
)
from gptground.grounding.result import (
    DEFAULT_LIMITS,
    Flag,
    GroundedPhrase,
    ParsedValue,
    ParseFailure,
    ParseLimits,
    ParseResult,
)
from gptground.grounding.types import Box, Span

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_LIMITS",
    "GROUNDING_PROMPT",
    "TASK_IDENTIFIERS",
    "Box",
    "Flag",
    "GroundedPhrase",
    "GroundingFormat",
    "ParseFailure",
    "ParseLimits",
    "ParseResult",
    "ParsedValue",
    "Span",
    "UnknownFormatError",
    "UnsupportedNotationError",
    "add_task_identifier",
    "available_formats",
    "format_boxes",
    "format_span",
    "from_padded_unit",
    "from_unit",
    "get_format",
    "padding_offset",
    "parse",
    "parse_boxes",
    "parse_spans",
    "register_format",
    "square_side",
    "strip_task_identifier",
    "to_padded_unit",
    "to_unit",
]
