"""The Python API: load a trained model folder, ask grounding questions, get typed answers.

::

    from gptground.api import Grounder

    g = Grounder.load("lightning_logs/tiny-stage2/version_0/model")
    g.ground_image("street.png", "Where is the red circle?").boxes    # [Box] in pixels
    for answer in g.ground_video("clip.mp4", ["When does the square move?", "When is it red?"]):
        print(answer.spans, answer.text)                              # [Span] in seconds
    chat = g.start_chat(video="clip.mp4")
    chat.ask("What happens in the video?").text

A single question returns one answer; a list of questions returns a list, in order. Media
are decoded and encoded once and kept in a small LRU (``Grounder.cache``), so many questions
about one video run its encoders once. Answers that cannot be parsed are returned with
empty boxes/spans and their ``failures``, never raised.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gptground.conversation import ASSISTANT, HUMAN, Turn, normalize_role
from gptground.eval.constrained import CoordinateConstraint
from gptground.eval.generate import batches, generate_batch, inference_dtype, model_placement, to_model
from gptground.grounding import DEFAULT_FORMAT, Box, ParseFailure, Span, get_format
from gptground.media_cache import EncodedMedia, MediaCache, file_key
from gptground.model.build import load_model
from gptground.model.folder import resolve_text_settings
from gptground.processor import Processor

MediaPath = str | os.PathLike
DEFAULT_SOUND_QUESTION = "Which object makes this sound?"


class ModalityUnavailableError(ValueError):
    """The model was not trained with the modality a question needs."""


@dataclass(frozen=True)
class BoxGrounding:
    """Where the answer points in an image.

    Attributes:
        query: the question asked.
        text: the model's raw answer.
        boxes: boxes read from the answer, pixels of the original image, in text order.
        image_size: (width, height) of the image in pixels.
        failures: parts of the answer that looked like boxes but could not be read.
    """

    query: str
    text: str
    boxes: tuple[Box, ...]
    image_size: tuple[int, int]
    failures: tuple[ParseFailure, ...] = ()

    @property
    def box(self) -> Box | None:
        """The first box (the one the REC protocol scores), or None."""
        return self.boxes[0] if self.boxes else None


@dataclass(frozen=True)
class SpanGrounding:
    """When the answer says something happens in a video or a sound.

    Attributes:
        query: the question asked.
        text: the model's raw answer.
        spans: spans read from the answer, seconds from the clip's start, in text order.
        duration: the clip's length in seconds.
        failures: parts of the answer that looked like spans but could not be read.
    """

    query: str
    text: str
    spans: tuple[Span, ...]
    duration: float
    failures: tuple[ParseFailure, ...] = ()

    @property
    def span(self) -> Span | None:
        """The first span (the one R@1 scores), or None."""
        return self.spans[0] if self.spans else None


@dataclass(frozen=True)
class ChatReply:
    """A free-form answer, with any boxes (pixels) and spans (seconds) it contains."""

    text: str
    boxes: tuple[Box, ...] = ()
    spans: tuple[Span, ...] = ()
    failures: tuple[ParseFailure, ...] = ()


def _questions(query: str | Sequence[str], argument: str) -> tuple[list[str], bool]:
    """(questions, whether one was given alone); empty ones raise ValueError naming them."""
    single = isinstance(query, str)
    questions = [query] if single else list(query)
    if not questions:
        raise ValueError(f"{argument} is an empty list; give at least one question")
    for i, question in enumerate(questions):
        where = argument if single else f"{argument}[{i}]"
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{where} must be a non-empty question, got {question!r}")
    return questions, single


def _turns(messages: str | Sequence[Turn | Mapping[str, str]]) -> list[Turn]:
    """Turns from a text or from messages ({"role"|"from", "content"|"value"} or Turn)."""
    if isinstance(messages, str):
        _questions(messages, "messages")
        return [Turn(HUMAN, messages)]
    turns = []
    for i, message in enumerate(messages):
        if isinstance(message, Turn):
            turns.append(message)
        elif isinstance(message, Mapping):
            role = message.get("role", message.get("from"))
            text = message.get("content", message.get("value"))
            turns.append(Turn(normalize_role(role), text))
        else:
            raise TypeError(f"messages[{i}] must be a Turn or a mapping, got {type(message).__name__}")
    if not turns or turns[-1].role != HUMAN:
        raise ValueError("messages must end with a question from the human (user) side")
    _questions(turns[-1].value, f"messages[{len(turns) - 1}]")
    return turns


class Grounder:
    """A trained grounding model, ready for questions.

    Args:
        model: a GroundingModel on its device and dtype.
        processor: the processor built for it (tokenizer, modalities, template).
        fmt: the grounding format the model answers in.
        max_new_tokens: the most tokens of an answer.
        batch_size: questions generated together.
        cache_size: encoded media files kept (LRU).
        constrained: decode coordinates constrained to the format's literal
            (:class:`~gptground.eval.constrained.CoordinateConstraint`).
    """

    def __init__(
        self,
        model,
        processor: Processor,
        fmt: str = DEFAULT_FORMAT,
        max_new_tokens: int = 64,
        batch_size: int = 8,
        cache_size: int = 4,
        constrained: bool = False,
    ):
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens} and {batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.format = get_format(fmt)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.cache = MediaCache(cache_size)
        self.constrained = constrained
        self._constraint: CoordinateConstraint | None = None

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        template: str | None = None,
        max_new_tokens: int = 64,
        **options: Any,
    ) -> Grounder:
        """Load a model folder (``<run folder>/model``) for inference.

        Args:
            folder: the model folder written by training.
            device: default: ``cuda`` when available, else ``cpu``.
            dtype: default: bfloat16 on a GPU that supports it, float32 on CPU.
            template: the conversation template; default: the one the folder records
                (the one the model was trained with).
            max_new_tokens: the most tokens of an answer.
            **options: more ``Grounder`` arguments (fmt, batch_size, cache_size, constrained);
                ``fmt`` defaults to the grounding format the folder records.
        """
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or inference_dtype(device)
        model, tokenizer, _ = load_model(os.fspath(folder), dtype)  # read straight into dtype
        template, options["fmt"] = resolve_text_settings(os.fspath(folder), template, options.get("fmt"))
        model.to(device=device, dtype=dtype)
        positions = model.decoder.config.max_position_embeddings
        if not 0 < max_new_tokens < positions:
            raise ValueError(f"max_new_tokens must be in [1, {positions - 1}] for this model, got {max_new_tokens}")
        processor = Processor(tokenizer, dict(model.modalities), template, max_length=positions - max_new_tokens)
        return cls(model, processor, max_new_tokens=max_new_tokens, **options)

    @property
    def modalities(self) -> list[str]:
        """The modalities this model reads, e.g. ["audio", "image", "video"]."""
        return sorted(self.model.modalities)

    # --- grounding questions -------------------------------------------------------------
    def ground_image(self, image: MediaPath, query: str | Sequence[str]) -> BoxGrounding | list[BoxGrounding]:
        """Boxes (pixels) for one question, or a list of answers for a list of questions."""
        questions, single = _questions(query, "query")
        texts, encoded = self._generate(questions, {"image": image})
        answers = [self._boxes(q, t, encoded["image"]) for q, t in zip(questions, texts)]
        return answers[0] if single else answers

    def ground_video(self, video: MediaPath, query: str | Sequence[str]) -> SpanGrounding | list[SpanGrounding]:
        """Spans (seconds) for one question, or a list of answers for a list of questions."""
        return self._ground_time("video", video, query)

    def ground_audio(self, audio: MediaPath, query: str | Sequence[str]) -> SpanGrounding | list[SpanGrounding]:
        """Spans (seconds) in a sound file for one question, or a list for a list."""
        return self._ground_time("audio", audio, query)

    def locate_sound(self, image: MediaPath, audio: MediaPath, question: str = DEFAULT_SOUND_QUESTION) -> BoxGrounding:
        """The box (pixels) of what makes the sound of ``audio`` in ``image``."""
        questions, _ = _questions(question, "question")
        texts, encoded = self._generate(questions, {"image": image, "audio": audio})
        return self._boxes(questions[0], texts[0], encoded["image"])

    # --- free-form questions -------------------------------------------------------------
    def chat(
        self,
        messages: str | Sequence[Turn | Mapping[str, str]],
        image: MediaPath | None = None,
        video: MediaPath | None = None,
        audio: MediaPath | None = None,
    ) -> ChatReply:
        """One reply to a question or to a whole conversation (which ends with a question).

        Args:
            messages: a question, or turns: ``Turn`` s or ``{"role": "user"|"assistant",
                "content": ...}`` mappings (``from``/``value`` as in records also work).
            image, video, audio: media the conversation is about. Spans in the reply are
                read against the video's duration when both a video and a sound are given.
        """
        media = {k: v for k, v in {"image": image, "video": video, "audio": audio}.items() if v is not None}
        texts, encoded = self._generate([_turns(messages)], media)
        return self._reply(texts[0], encoded)

    def start_chat(
        self, image: MediaPath | None = None, video: MediaPath | None = None, audio: MediaPath | None = None
    ) -> Chat:
        """A multi-turn conversation about the given media; see :class:`Chat`."""
        return Chat(self, {k: v for k, v in {"image": image, "video": video, "audio": audio}.items() if v is not None})

    # --- the engine ----------------------------------------------------------------------
    def encode(self, modality: str, source: MediaPath) -> EncodedMedia:
        """A media file decoded and turned into decoder tokens, through the cache.

        Raises:
            ModalityUnavailableError: the model has no such modality.
            MediaNotFoundError, UnsupportedMediaError, CorruptMediaError: from loading.
        """
        if modality not in self.model.modalities:
            raise ModalityUnavailableError(
                f"this model was not built with the {modality!r} modality; it reads: {', '.join(self.modalities)}"
            )
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(f"{modality} must be a path or URL, got {type(source).__name__}")
        return self.cache.get(file_key(modality, source), lambda: self._encode_now(modality, source))

    @torch.no_grad()
    def _encode_now(self, modality: str, source: MediaPath) -> EncodedMedia:
        encoder = self.model.modalities[modality]
        media = encoder.load(os.fspath(source))
        x = to_model(encoder.transform(media, train=False).unsqueeze(0), *model_placement(self.model))
        return EncodedMedia(modality, media, encoder(x)[0])  # (N, d_model)

    def _generate(
        self, questions: Sequence[str | Sequence[Turn]], sources: Mapping[str, MediaPath]
    ) -> tuple[list[str], dict[str, EncodedMedia]]:
        encoded = {name: self.encode(name, source) for name, source in sources.items()}
        media = {name: e.media for name, e in encoded.items()}
        tokens = {name: e.tokens for name, e in encoded.items()}
        samples = [self.processor.prompt(q, media=media, sample_id=f"question {i}") for i, q in enumerate(questions)]
        texts: list[str] = []
        for chunk in batches(samples, self.batch_size):
            texts += generate_batch(
                self.model,
                self.processor,
                chunk,
                self.max_new_tokens,
                self._logits_processors(),
                sample_tokens=[tokens] * len(chunk),
            )
        return texts, encoded

    def _logits_processors(self) -> list[CoordinateConstraint]:
        if not self.constrained:
            return []
        if self._constraint is None:  # built once: it reads the whole vocabulary
            self._constraint = CoordinateConstraint(self.processor.tokenizer, self.format.name)
        return [self._constraint]

    # --- reading answers -----------------------------------------------------------------
    def _ground_time(self, modality: str, source: MediaPath, query: str | Sequence[str]):
        questions, single = _questions(query, "query")
        texts, encoded = self._generate(questions, {modality: source})
        duration = encoded[modality].media.duration
        answers = []
        for question, text in zip(questions, texts):
            parsed = self.format.parse(text, duration=duration)
            answers.append(SpanGrounding(question, text, tuple(parsed.spans), duration, tuple(parsed.failures)))
        return answers[0] if single else answers

    def _boxes(self, question: str, text: str, image: EncodedMedia) -> BoxGrounding:
        size = image.media.size
        parsed = self.format.parse(text, image_size=size)
        return BoxGrounding(question, text, tuple(parsed.boxes), size, tuple(parsed.failures))

    def _reply(self, text: str, encoded: Mapping[str, EncodedMedia]) -> ChatReply:
        image = encoded.get("image")
        clip = encoded.get("video") or encoded.get("audio")
        parsed = self.format.parse(
            text, image_size=image.media.size if image else None, duration=clip.media.duration if clip else None
        )
        return ChatReply(text, tuple(parsed.boxes), tuple(parsed.spans), tuple(parsed.failures))


class Chat:
    """A conversation about fixed media that keeps its history.

    Each :meth:`ask` sends every earlier question and answer with the new question, as the
    model saw multi-turn conversations in training; the media are encoded once.

    Attributes:
        turns: the conversation so far, alternating human and assistant turns.
    """

    def __init__(self, grounder: Grounder, media: Mapping[str, MediaPath]):
        self.grounder = grounder
        self.media = dict(media)
        self.turns: list[Turn] = []

    def ask(self, question: str) -> ChatReply:
        """The model's reply to ``question`` given the history; both join the history."""
        _questions(question, "question")
        turns = [*self.turns, Turn(HUMAN, question)]
        texts, encoded = self.grounder._generate([turns], self.media)
        self.turns = [*turns, Turn(ASSISTANT, texts[0])]
        return self.grounder._reply(texts[0], encoded)

    def reset(self) -> None:
        """Forget the history (the media stay)."""
        self.turns = []
