"""Finding every notation group in a text, within the parse limits.

One combined regex of all the format's openers finds the next place where a box or span
may start; the notation then reads the group from there. A group that cannot be read
becomes a failure and scanning resumes where reading broke down, so one bad group never
hides the good ones after it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from gptground.grounding.notation import Notation
from gptground.grounding.reading import RawGroup, ReadError
from gptground.grounding.result import ParseFailure, ParseLimits

SNIPPET_CHARS = 40


@dataclass
class Scan:
    """Groups found, each with the notation that read it, and failures, in text order."""

    groups: list[tuple[Notation, RawGroup]] = field(default_factory=list)
    failures: list[ParseFailure] = field(default_factory=list)


def compile_openers(notations: Sequence[Notation]) -> re.Pattern[str]:
    """One regex whose named group ``n<i>`` says that notation ``i`` starts here."""
    alternatives = (f"(?P<n{i}>{n.opener})" for i, n in enumerate(notations))
    return re.compile("|".join(alternatives), re.IGNORECASE)


def failure(text: str, offset: int, reason: str) -> ParseFailure:
    """A failure with the text around ``offset`` as its snippet."""
    return ParseFailure(offset, text[offset : offset + SNIPPET_CHARS], reason)


def scan(text: str, notations: Sequence[Notation], openers: re.Pattern[str], limits: ParseLimits) -> Scan:
    """Read every group of ``notations`` in ``text``.

    Args:
        text: the model output.
        notations: the format's notations, in the order ``openers`` was compiled from.
        openers: ``compile_openers(notations)``.
        limits: bounds on the characters scanned, groups read and failures kept.
    """
    result = Scan()
    scanned = text[: limits.max_chars]
    pos = 0
    while (match := openers.search(scanned, pos)) is not None:
        notation = notations[int(match.lastgroup[1:])]
        try:
            group = notation.read_group(scanned, match.start())
        except ReadError as error:
            # Reported at the notation's start, so the snippet shows what was attempted.
            result.failures.append(failure(scanned, match.start(), error.reason))
            # Resume where reading broke down: a notation starting there is still found,
            # and the failed one's tail is not re-read as a second failure.
            pos = max(error.offset, match.start() + 1)
        else:
            result.groups.append((notation, group))
            pos = max(group.end, match.start() + 1)
        if _stop(result, scanned, pos, limits):
            break
    if len(text) > limits.max_chars:
        reason = f"text is {len(text)} characters; only the first {limits.max_chars} were scanned"
        result.failures.append(failure(text, limits.max_chars, reason))
    return result


def _stop(result: Scan, text: str, pos: int, limits: ParseLimits) -> bool:
    """Whether a limit is reached; if so, record why scanning stops at ``pos``."""
    if len(result.groups) >= limits.max_groups:
        reason = f"stopped after {limits.max_groups} groups (ParseLimits.max_groups)"
    elif len(result.failures) >= limits.max_failures:
        reason = f"stopped after {limits.max_failures} failures (ParseLimits.max_failures)"
    else:
        return False
    if pos < len(text):
        result.failures.append(failure(text, pos, reason))
    return True
