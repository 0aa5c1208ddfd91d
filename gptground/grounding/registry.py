"""The named formats, chosen by name in recipes, the API and the CLI."""

from __future__ import annotations

from gptground.grounding.bracket import BracketBoxNotation
from gptground.grounding.format import GroundingFormat
from gptground.grounding.kosmos2 import Kosmos2BoxNotation
from gptground.grounding.minigptv2 import BOX_DELIMITER, MiniGPTv2BoxNotation
from gptground.grounding.phrases import TaggedPhrase
from gptground.grounding.quantize import BinQuantizer, DecimalQuantizer
from gptground.grounding.spans import FractionSpanNotation, FrameIndexSpanNotation, SecondsSpanNotation

DEFAULT_FORMAT = "groundinggpt"


class UnknownFormatError(ValueError):
    """No format is registered under the name asked for."""


def _builtin_formats() -> list[GroundingFormat]:
    three_decimals = DecimalQuantizer(decimals=3)
    return [
        GroundingFormat(
            "groundinggpt",
            "boxes [x1, y1, x2, y2] 0-1, 3 decimals, on the padded square; spans {t1,t2} 0-1, 2 decimals",
            boxes=BracketBoxNotation(three_decimals, padded=True),
            spans=FractionSpanNotation(decimals=2),
        ),
        GroundingFormat(
            "shikra",
            "boxes [x1,y1,x2,y2] 0-1, 3 decimals, on the padded square, ';' between boxes",
            boxes=BracketBoxNotation(
                three_decimals, padded=True, item_separator=",", between_boxes=";", one_bracket=True
            ),
        ),
        GroundingFormat(
            "minigptv2",
            "<p>phrase</p> {<x1><y1><x2><y2>} integers 0-100 of W and H, <delim> between boxes",
            boxes=MiniGPTv2BoxNotation(),
            phrases=TaggedPhrase("<p>", "</p>", delimiter=BOX_DELIMITER, gap=" "),
        ),
        GroundingFormat(
            "kosmos2",
            "<phrase> phrase</phrase><object><patch_index_XXXX><patch_index_XXXX></object>, 32x32 grid",
            boxes=Kosmos2BoxNotation(grid=32),
            phrases=TaggedPhrase("<phrase>", "</phrase>", inner_space=" "),
        ),
        GroundingFormat(
            "ferret",
            "boxes [x1, y1, x2, y2] integers 0-999 of W and H",
            boxes=BracketBoxNotation(BinQuantizer(bins=1000, max_index=999), padded=False, between_boxes=", "),
        ),
        GroundingFormat(
            "seconds",
            "spans 'from 3.2 to 7.9 seconds' (also '3.2 - 7.9 seconds')",
            spans=SecondsSpanNotation(decimals=1),
        ),
        GroundingFormat(
            "vtimellm",
            "spans 'from 05 to 43': indices of 100 uniformly sampled frames",
            spans=FrameIndexSpanNotation(frames=100),
        ),
    ]


_REGISTRY: dict[str, GroundingFormat] = {fmt.name: fmt for fmt in _builtin_formats()}


def register_format(fmt: GroundingFormat, replace: bool = False) -> None:
    """Make ``fmt`` available by its name.

    Raises:
        ValueError: if the name is taken and ``replace`` is False.
    """
    if fmt.name in _REGISTRY and not replace:
        raise ValueError(f"a grounding format named {fmt.name!r} is already registered")
    _REGISTRY[fmt.name] = fmt


def get_format(name: str | GroundingFormat) -> GroundingFormat:
    """The format registered as ``name`` (a ``GroundingFormat`` is returned unchanged).

    Raises:
        UnknownFormatError: naming the formats that exist.
    """
    if isinstance(name, GroundingFormat):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFormatError(
            f"unknown grounding format {name!r}; available: {', '.join(available_formats())}"
        ) from None


def available_formats() -> list[str]:
    """Names of all registered formats, built-ins first."""
    return list(_REGISTRY)
