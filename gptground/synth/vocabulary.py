"""The fixed vocabulary of the synthetic world: colours, shape kinds, events and their words.

Everything a caption or question can name is listed here, so the world's language is
small and the same in every module.
"""

from __future__ import annotations

# Saturated colours far apart in RGB, so a tiny encoder tells them apart and a background
# (muted, see world.sample_background) never looks like one of them. RGB, 0-255.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 90, 230),
    "yellow": (235, 205, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "cyan": (40, 200, 210),
    "white": (245, 245, 245),
}

SHAPE_KINDS = ("circle", "square", "triangle", "diamond")
SIZE_WORDS = ("small", "large")
BACKGROUND_KINDS = ("plain", "gradient", "noise")
VIDEO_EVENT_KINDS = ("appear", "move", "change_colour")
AUDIO_EVENT_KINDS = ("high_beep", "low_tone", "noise_burst", "spoken_word")

# Words for the spoken_word event: short, distinct, easy for espeak-ng.
SPOKEN_WORDS = ("hello", "stop", "yes", "seven", "apple")

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def number_word(n: int) -> str:
    """'two' for 2; digits past nine."""
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def join_phrases(phrases: list[str]) -> str:
    """['a', 'b', 'c'] -> 'a, b and c'."""
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    return text[:1].upper() + text[1:] + "."


def audio_event_name(kind: str, word: str | None = None) -> str:
    """The noun phrase for an audio event, without article: 'high beep', 'word "stop"'."""
    if kind == "spoken_word":
        return f'word "{word}"'
    return {"high_beep": "high beep", "low_tone": "low tone", "noise_burst": "burst of noise"}[kind]
