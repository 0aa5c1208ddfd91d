"""``GroundingFormat``: a named way to write boxes and spans into text and read them back."""

from __future__ import annotations

from collections.abc import Sequence

from gptground.grounding.checks import (
    check_box_in_image,
    check_duration,
    check_image_size,
    check_not_empty,
    check_span_in_clip,
)
from gptground.grounding.notation import BoxNotation, Notation, SpanNotation
from gptground.grounding.phrases import PhraseCollector, PhraseRule, PrecedingText
from gptground.grounding.reading import RawGroup, RawValue, ReadError
from gptground.grounding.result import (
    DEFAULT_LIMITS,
    ParsedValue,
    ParseFailure,
    ParseLimits,
    ParseResult,
)
from gptground.grounding.scanner import compile_openers, failure, scan
from gptground.grounding.types import Box, Span


class UnsupportedNotationError(ValueError):
    """The format has no notation for this kind of value (e.g. spans in Shikra)."""


class GroundingFormat:
    """Writes boxes and spans as a model's text, and parses them back from its output.

    Args:
        name: registry name, e.g. ``"groundinggpt"``.
        description: one line for listings and docs.
        boxes: how boxes are written, or None if the format has none.
        spans: how time spans are written, or None if the format has none.
        phrases: which phrase a group of values belongs to.
    """

    def __init__(
        self,
        name: str,
        description: str,
        boxes: BoxNotation | None = None,
        spans: SpanNotation | None = None,
        phrases: PhraseRule | None = None,
    ) -> None:
        if boxes is None and spans is None:
            raise ValueError(f"format {name!r} needs a box notation, a span notation or both")
        self.name = name
        self.description = description
        self.boxes = boxes
        self.spans = spans
        self.phrases = phrases or PrecedingText()
        self._notations: list[Notation] = [n for n in (boxes, spans) if n is not None]
        self._openers = compile_openers(self._notations)

    def __repr__(self) -> str:
        return f"GroundingFormat({self.name!r})"

    def with_spans(self, other: GroundingFormat) -> GroundingFormat:
        """This format's boxes and phrases with ``other``'s span notation.

        E.g. Shikra has no time notation: ``shikra.with_spans(get_format("seconds"))``.
        """
        if other.spans is None:
            raise UnsupportedNotationError(f"format {other.name!r} has no span notation to borrow")
        description = f"{self.description}; spans as in {other.name}"
        return GroundingFormat(f"{self.name}+{other.name}", description, self.boxes, other.spans, self.phrases)

    # Writing ---------------------------------------------------------------------------

    def write_box(self, box: Box, image_size: tuple[float, float]) -> str:
        """Text of one box in this format.

        Args:
            box: pixels of the original image, inside it (see ``Box.clip``).
            image_size: ``(width, height)`` of the original image in pixels.

        Raises:
            ValueError: for a bad image size or a box outside the image.
            UnsupportedNotationError: if the format has no box notation.
        """
        return self.write_boxes([box], image_size)

    def write_boxes(self, boxes: Sequence[Box], image_size: tuple[float, float]) -> str:
        """Text of several boxes of one phrase (``[..][..]``, ``[..;..]``, ``<delim>``...)."""
        notation = self._box_notation()
        image_size = check_image_size(image_size)
        check_not_empty(boxes, "boxes")
        for box in boxes:
            check_box_in_image(box, image_size)
        return notation.write(boxes, image_size)

    def write_span(self, span: Span, duration: float | None) -> str:
        """Text of one time span in this format.

        Args:
            span: seconds, inside ``[0, duration]``.
            duration: clip length in seconds; may be None only for absolute (seconds) formats.

        Raises:
            ValueError: for a bad duration or a span outside the clip.
            UnsupportedNotationError: if the format has no span notation.
        """
        notation = self._span_notation()
        if duration is not None:
            duration = check_duration(duration)
        elif notation.needs_duration:
            raise ValueError(f"format {self.name!r} writes spans relative to the clip: duration is required")
        check_span_in_clip(span, duration)
        return notation.write(span, duration)

    def write_phrase(self, phrase: str, boxes: Sequence[Box], image_size: tuple[float, float]) -> str:
        """A phrase with its boxes, e.g. ``<p>a man</p> {<12><34><56><78>}`` or ``a man [..]``."""
        return self.phrases.wrap(phrase, self.write_boxes(boxes, image_size))

    def _box_notation(self) -> BoxNotation:
        if self.boxes is None:
            raise UnsupportedNotationError(f"format {self.name!r} has no box notation")
        return self.boxes

    def _span_notation(self) -> SpanNotation:
        if self.spans is None:
            raise UnsupportedNotationError(
                f"format {self.name!r} has no span notation; borrow one with "
                f"get_format({self.name!r}).with_spans(get_format('seconds')) or use a span "
                "format such as 'groundinggpt', 'seconds' or 'vtimellm'"
            )
        return self.spans

    # Parsing ---------------------------------------------------------------------------

    def parse(
        self,
        text: str,
        image_size: tuple[float, float] | None = None,
        duration: float | None = None,
        limits: ParseLimits = DEFAULT_LIMITS,
    ) -> ParseResult:
        """Read every box and span in a model's output; never raises on the text.

        Args:
            text: the model output.
            image_size: ``(width, height)`` of the original image; boxes found without it
                are reported as failures.
            duration: clip length in seconds; relative spans found without it are
                reported as failures.
            limits: bounds on the work done.

        Returns:
            Phrases with their boxes (pixels) and spans (seconds), and the failures.

        Raises:
            ValueError: if ``image_size`` or ``duration`` is given but invalid (caller error).
        """
        image_size = None if image_size is None else check_image_size(image_size)
        duration = None if duration is None else check_duration(duration)
        found = scan(text, self._notations, self._openers, limits)
        collector = PhraseCollector(text, self.phrases, limits.phrase_window)
        failures = list(found.failures)
        for notation, group in found.groups:
            boxes, spans = self._convert(text, notation, group, image_size, duration, failures)
            collector.add(group, boxes, spans)
        failures.sort(key=lambda f: f.offset)
        return ParseResult(text, collector.phrases, failures)

    def _convert(
        self,
        text: str,
        notation: Notation,
        group: RawGroup,
        image_size: tuple[float, float] | None,
        duration: float | None,
        failures: list[ParseFailure],
    ) -> tuple[list[ParsedValue[Box]], list[ParsedValue[Span]]]:
        """Pixels or seconds for each value of a group; what cannot convert goes to failures."""
        boxes: list[ParsedValue[Box]] = []
        spans: list[ParsedValue[Span]] = []
        for raw in group.values:
            try:
                if notation is self.boxes:
                    boxes.append(self._to_box(raw, image_size))
                else:
                    spans.append(self._to_span(raw, duration))
            except ReadError as error:
                failures.append(failure(text, error.offset, error.reason))
        return boxes, spans

    def _to_box(self, raw: RawValue, image_size: tuple[float, float] | None) -> ParsedValue[Box]:
        if image_size is None:
            raise ReadError(raw.start, "image_size is required to convert boxes to pixels")
        box, flags = self.boxes.to_box(raw, image_size)
        return ParsedValue(box, raw.start, raw.end, flags)

    def _to_span(self, raw: RawValue, duration: float | None) -> ParsedValue[Span]:
        if duration is None and self.spans.needs_duration:
            raise ReadError(raw.start, f"duration is required to convert {self.spans.label} to seconds")
        span, flags = self.spans.to_span(raw, duration)
        return ParsedValue(span, raw.start, raw.end, flags)
