"""The typed items that benchmark readers yield.

Every item carries ground truth in pixels of the original image (:class:`Box`) or in
seconds from the start of the clip (:class:`Span`), whatever the file stored. Media paths
are relative, keyed like GPTGround records (``image``, ``video``, ``sound``), and resolved
against the per-modality roots of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptground.grounding.types import Box, Span


@dataclass(frozen=True)
class RecItem:
    """One referring expression and the object it names (RefCOCO, RefCOCO+, RefCOCOg)."""

    id: str
    image: str
    expression: str
    boxes: tuple[Box, ...]
    """The referred object's box; one box in every RefCOCO layout."""
    image_size: tuple[int, int]
    """(width, height) of the original image, pixels."""
    split: str | None = None


@dataclass(frozen=True)
class GroundedPhrase:
    """A phrase of a caption and the boxes of the entity it mentions."""

    text: str
    boxes: tuple[Box, ...]
    """Empty when the entity has no box (not visible, or the whole scene)."""
    start: int = 0
    """Character offset of the phrase in its caption (without markup)."""
    entity_id: str = ""
    types: tuple[str, ...] = ()
    """Coarse categories of the annotation (Flickr30K: people, clothing, ...)."""


@dataclass(frozen=True)
class PhraseGroundingItem:
    """One caption with its grounded phrases (Flickr30K Entities)."""

    id: str
    image: str
    caption: str
    phrases: tuple[GroundedPhrase, ...]
    image_size: tuple[int, int]
    """(width, height) of the original image, pixels."""

    def phrase_boxes(self) -> list[tuple[str, tuple[Box, ...]]]:
        """The ``(phrase, boxes)`` pairs that :func:`phrase_grounding_recall` takes."""
        return [(phrase.text, phrase.boxes) for phrase in self.phrases]


@dataclass(frozen=True)
class MomentItem:
    """A natural-language query and the moments of a video it describes.

    Charades-STA, DiDeMo and ActivityNet Captions; several spans are several annotators'
    windows (DiDeMo), any of which may be matched.
    """

    id: str
    video: str
    query: str
    spans: tuple[Span, ...]
    duration: float | None
    """Seconds, where the annotation (or a durations table) gives it."""


@dataclass(frozen=True)
class SoundSourceItem:
    """A video frame, its soundtrack and the boxes of what makes the sound (VGG-SS)."""

    id: str
    image: str
    sound: str
    boxes: tuple[Box, ...]
    image_size: tuple[int, int]
    """(width, height) the boxes are measured in, pixels."""
    label: str | None = None
    """The VGGSound class of the clip, where given."""


@dataclass(frozen=True)
class AudioCaptionItem:
    """An audio clip and its reference captions (Clotho)."""

    id: str
    sound: str
    captions: tuple[str, ...]
