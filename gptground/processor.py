"""The processor: the one place where a record's text and media become tensors.

Training (``processor(record)``) and inference (``processor.prompt(...)``) run the same
code: the conversation template renders ``Piece`` s (``gptground.conversation.render``),
placeholders such as ``<image>`` in human messages become ``<im_start>`` + N x ``<im_patch>``
+ ``<im_end>`` (N = the modality's ``num_tokens``), and ids are built piece by piece, so
every id knows whether the loss covers it; no offsets are guessed from re-tokenised
substrings. A sample that would train on nothing, or whose media tokens would be cut, is
an error naming the sample, never a silently emptied sample.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import torch
from tokenizers import AddedToken
from transformers import PreTrainedTokenizerBase

from gptground.conversation import (
    ASSISTANT,
    HUMAN,
    ConversationError,
    Piece,
    Turn,
    get_template,
    render,
)
from gptground.data.features import FeatureStore
from gptground.data.readers import (
    MEDIA_KEYS,
    Record,
    RecordError,
    parse_record,
    resolve_media_path,
)
from modalities.base import Media, Modality
from modalities.errors import MediaError

IGNORE_INDEX = -100  # label of positions without loss (PyTorch cross-entropy's default)

MediaInput = str | os.PathLike | IO[bytes] | Media  # a file to load, or already decoded media


class SampleError(ValueError):
    """A sample that cannot be turned into training tensors. Names the sample id."""

    def __init__(self, sample_id: str, reason: str):
        self.sample_id = sample_id
        self.reason = reason
        super().__init__(f"sample {sample_id!r}: {reason}")


class SampleMediaError(SampleError):
    """A sample's media failed to load or transform; ``media_error`` is the MediaError."""

    def __init__(self, sample_id: str, media_error: MediaError):
        self.media_error = media_error
        super().__init__(sample_id, f"media error: {media_error}")


@dataclass(frozen=True)
class ModalityTokenIds:
    """Ids of one modality's ``<xx_start>``, ``<xx_patch>`` and ``<xx_end>`` tokens."""

    start: int
    patch: int
    end: int


def add_modality_tokens(
    tokenizer: PreTrainedTokenizerBase, modalities: Iterable[Modality | type[Modality]]
) -> list[int]:
    """Add each modality's (start, patch, end) tokens to the tokenizer as special tokens.

    Modalities are taken in name order, so the ids do not depend on a recipe's key order.
    Tokens the tokenizer already has (e.g. a saved model's tokenizer) are left alone.

    Returns:
        The ids of the newly added tokens (empty when all existed): the model gives these
        embedding rows their initial value.
    """
    vocab = tokenizer.get_vocab()
    new = []
    for modality in sorted(modalities, key=lambda m: m.name):
        new += [t for t in modality.special_tokens() if t not in vocab and t not in new]
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in new], special_tokens=True)
    return tokenizer.convert_tokens_to_ids(new)


def modality_token_ids(
    tokenizer: PreTrainedTokenizerBase, modalities: Mapping[str, Modality]
) -> dict[str, ModalityTokenIds]:
    """name -> ids of that modality's special tokens; they must have been added already."""
    ids = {}
    for name, modality in modalities.items():
        tokens = modality.special_tokens()
        missing = [t for t in tokens if t not in tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"tokenizer lacks {missing} of modality {name!r}; call add_modality_tokens first")
        ids[name] = ModalityTokenIds(*tokenizer.convert_tokens_to_ids(list(tokens)))
    return ids


@dataclass(frozen=True)
class MediaMeta:
    """What the grounding codecs need to map answers back to pixels and seconds.

    Attributes:
        source: the path or URL the media came from.
        size: (width, height) in pixels of the original image or video frame.
        duration: length in seconds (video, audio).
        times: video: (F,) time of each sampled frame in s; audio: (W, 2) window bounds in s.
    """

    source: str
    size: tuple[int, int] | None = None
    duration: float | None = None
    times: torch.Tensor | None = None

    @classmethod
    def of(cls, media: Media) -> MediaMeta:
        return cls(source=media.source, size=media.size, duration=media.duration, times=media.times)


@dataclass
class Sample:
    """One processed sample.

    Attributes:
        sample_id: the record id (or the id given to ``prompt``).
        input_ids: (T,) int64, BOS first.
        labels: (T,) int64, IGNORE_INDEX where no loss; all IGNORE_INDEX for a prompt.
        media: modality name -> transformed input (e.g. image (3, H, W) float).
        media_meta: modality name -> MediaMeta.
        encoded: names of the modalities whose ``media`` entry already holds frozen-encoder
            features from a FeatureStore (the model then runs only the adapter).
    """

    sample_id: str
    input_ids: torch.Tensor
    labels: torch.Tensor
    media: dict[str, torch.Tensor] = field(default_factory=dict)
    media_meta: dict[str, MediaMeta] = field(default_factory=dict)
    encoded: set[str] = field(default_factory=set)


@dataclass
class _Encoded:
    """Ids built so far, whether each is trained, and the media blocks (name, start, stop)."""

    ids: list[int]
    trained: list[bool]
    blocks: list[tuple[str, int, int]] = field(default_factory=list)

    def extend(self, ids: Sequence[int], trained: bool) -> None:
        self.ids.extend(ids)
        self.trained.extend([trained] * len(ids))


class Processor:
    """Turns records into ``Sample`` s and questions into prompts, for one model.

    Args:
        tokenizer: a Hugging Face fast tokenizer with a BOS token; the modalities' special
            tokens are added to it here.
        modalities: name -> modality (its placeholder, token count, loader, transforms).
        template: conversation template name (``gptground.conversation.get_template``).
        max_length: the most tokens a sample may have; longer ones are cut at the end.
        media_roots: record key ("image", "video", "sound") -> folder or fsspec URL prefix
            that the record's relative media paths are joined to.
        train: use the modalities' training transforms (random augmentation).
        features: a FeatureStore of frozen-encoder outputs; media found in it are not
            decoded at all (their eval transform was used when the store was built).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        modalities: Mapping[str, Modality],
        template: str = "groundinggpt",
        max_length: int = 2048,
        media_roots: Mapping[str, str] | None = None,
        train: bool = False,
        features: FeatureStore | None = None,
    ):
        if max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length}")
        if tokenizer.bos_token_id is None:
            raise ValueError("the tokenizer has no BOS token, which every sample starts with")
        for name, modality in modalities.items():
            if modality.name != name:
                raise ValueError(f"modalities[{name!r}] is the modality named {modality.name!r}")
        self.tokenizer = tokenizer
        self.modalities = dict(modalities)
        self.template = get_template(template)
        self.max_length = max_length
        self.train = train
        self.features = features
        self._by_record_key = {m.record_key: name for name, m in self.modalities.items()}
        self.media_roots = self._checked_roots(media_roots or {})
        self.new_token_ids = add_modality_tokens(tokenizer, self.modalities.values())
        self.token_ids = modality_token_ids(tokenizer, self.modalities)
        # placeholder text ("<image>", alias "<audio>") -> modality name
        self._placeholders = {p: n for n, m in self.modalities.items() for p in (m.placeholder, *m.aliases)}
        # longest first, so that no placeholder matches inside a longer one
        alternatives = sorted(self._placeholders, key=len, reverse=True)
        pattern = "(" + "|".join(map(re.escape, alternatives)) + ")"
        self._placeholder_re = re.compile(pattern) if alternatives else None
        self._reserved = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
        self._fixed_ids: dict[tuple[str, bool], list[int]] = {}  # template text -> ids

    def _checked_roots(self, roots: Mapping[str, str]) -> dict[str, str]:
        for key in roots:
            if key not in self._by_record_key:
                known = sorted(self._by_record_key)
                raise ValueError(f"media_roots key {key!r} is not the record key of any modality; known: {known}")
        return dict(roots)

    # --- public API ----------------------------------------------------------------------
    def __call__(self, record: Record | Mapping[str, Any]) -> Sample:
        """The training sample of a record: ids, labels over the assistant turns, media.

        Args:
            record: a ``Record`` from the readers, or one raw JSON record (a dict).

        Raises:
            SampleError: placeholders that do not match the record's media, roles that do not
                alternate, reserved tokens in the text, or a cut that would drop media
                tokens or every trained token. SampleMediaError when media fails to load.
        """
        if not isinstance(record, Record):
            record = self._parsed(record)
        sid = record.id
        names = self._media_names(record.media, sid)
        self._check_placeholders(record.conversations, names, sid)
        encoded = self._encode(self._render(record.conversations, sid, prompt=False))
        self._truncate(encoded, sid)
        sources = {
            self._by_record_key[key]: resolve_media_path(self.media_roots.get(key), path)
            for key, path in record.media.items()
        }
        return self._sample(sid, encoded, sources)

    def prompt(
        self,
        question: str | Sequence[Turn],
        media: Mapping[str, MediaInput] | None = None,
        sample_id: str = "prompt",
    ) -> Sample:
        """The inference input: the same ids as the training prefix up to the assistant header.

        Args:
            question: a question, or a conversation (alternating turns from a human one; a
                final assistant turn is dropped, as the model is to write it).
            media: modality name -> file path / URL / file object (used as given, not joined
                to media roots) or already decoded ``Media``. A medium whose placeholder the
                text lacks gets ``"{placeholder}\\n"`` put before the first question, as in
                GroundingGPT's data.
            sample_id: names the prompt in errors.
        """
        turns = [Turn(HUMAN, question)] if isinstance(question, str) else list(question)
        media = dict(media or {})
        for name in media:
            if name not in self.modalities:
                known = sorted(self.modalities)
                raise SampleError(sample_id, f"media for unknown modality {name!r}; known: {known}")
        turns = self._with_placeholders(turns, media, sample_id)
        self._check_placeholders(turns, set(media), sample_id)
        encoded = self._encode(self._render(turns, sample_id, prompt=True))
        if len(encoded.ids) > self.max_length:
            raise SampleError(
                sample_id, f"prompt has {len(encoded.ids)} tokens, more than max_length={self.max_length}"
            )
        encoded.trained = [False] * len(encoded.ids)  # earlier answers are context, not targets
        return self._sample(sample_id, encoded, media)

    # --- checks --------------------------------------------------------------------------
    def _parsed(self, raw: Mapping[str, Any]) -> Record:
        sid = str(raw.get("id", "<record>")) if isinstance(raw, Mapping) else "<record>"
        media_keys = sorted(set(MEDIA_KEYS) | set(self._by_record_key))
        try:
            return parse_record(raw, where=sid, media_keys=media_keys)
        except RecordError as e:
            raise SampleError(sid, e.reason) from e

    def _media_names(self, media: Mapping[str, str], sid: str) -> set[str]:
        unknown = [k for k in media if k not in self._by_record_key]
        if unknown:
            known = sorted(self._by_record_key)
            raise SampleError(sid, f"media keys {unknown} are read by no modality of this processor; known: {known}")
        return {self._by_record_key[k] for k in media}

    def _check_placeholders(self, turns: Sequence[Turn], media_names: set[str], sid: str) -> None:
        """One placeholder per medium, in human turns only, and none without its medium."""
        counts: Counter[str] = Counter()
        for i, turn in enumerate(turns):
            reserved = [t for t in self._reserved if t in turn.value]
            if reserved:
                raise SampleError(sid, f"turn {i} contains the reserved token(s) {sorted(reserved)}")
            found = self._find_placeholders(turn.value)
            if found and turn.role == ASSISTANT:
                raise SampleError(sid, f"turn {i} (assistant) contains the placeholder(s) {found}")
            counts.update(self._placeholders[p] for p in found)
        for name in sorted(set(counts) | media_names):
            placeholder = self.modalities[name].placeholder
            if counts[name] > 1:
                raise SampleError(sid, f"{counts[name]} {placeholder} placeholders; a sample holds one {name} item")
            if name not in media_names:
                raise SampleError(sid, f"text has {placeholder} but the sample has no {name} media")
            if counts[name] == 0:
                raise SampleError(sid, f"sample has {name} media but no {placeholder} placeholder in the text")

    def _find_placeholders(self, text: str) -> list[str]:
        return self._placeholder_re.findall(text) if self._placeholder_re else []

    def _with_placeholders(self, turns: list[Turn], media: Mapping[str, MediaInput], sid: str) -> list[Turn]:
        if not turns:
            raise SampleError(sid, "prompt has no turns")
        text = "".join(t.value for t in turns)
        present = {self._placeholders[p] for p in self._find_placeholders(text)}
        prefix = "".join(f"{self.modalities[n].placeholder}\n" for n in media if n not in present)
        return [Turn(turns[0].role, prefix + turns[0].value), *turns[1:]]

    def _render(self, turns: Sequence[Turn], sid: str, prompt: bool) -> list[Piece]:
        try:
            return render(self.template, turns, prompt=prompt)
        except ConversationError as e:
            raise SampleError(sid, str(e)) from e

    # --- ids -----------------------------------------------------------------------------
    def _encode(self, pieces: Sequence[Piece]) -> _Encoded:
        """BOS, then each piece's ids; placeholders in messages become media token blocks."""
        encoded = _Encoded([self.tokenizer.bos_token_id], [False])
        for piece in pieces:
            has_media = piece.kind == "message" and self._placeholder_re is not None
            parts = self._placeholder_re.split(piece.text) if has_media else [piece.text]
            for part in parts:
                name = self._placeholders.get(part)
                if name is None:
                    encoded.extend(self._text_ids(part, piece, start=len(encoded.ids) == 1), piece.trained)
                else:
                    self._append_block(encoded, name)
        return encoded

    def _append_block(self, encoded: _Encoded, name: str) -> None:
        ids = self.token_ids[name]
        start = len(encoded.ids)
        encoded.extend([ids.start] + [ids.patch] * self.modalities[name].num_tokens + [ids.end], trained=False)
        encoded.blocks.append((name, start, len(encoded.ids)))

    def _text_ids(self, text: str, piece: Piece, start: bool) -> list[int]:
        """Ids of ``text`` as it reads at the start of the sequence or in its middle.

        Mid-sequence text is encoded after the BOS token, then BOS is dropped: tokenizers that
        prepend a space at the start of an input (LLaMA's "▁") do not do so after a special
        token, so a piece gets the ids it would have inside the whole text.
        """
        if not text:
            return []
        key = (text, start)
        if piece.kind != "message" and key in self._fixed_ids:
            return self._fixed_ids[key]
        if start:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        else:
            anchored = self.tokenizer.encode(self.tokenizer.bos_token + text, add_special_tokens=False)
            if anchored[0] != self.tokenizer.bos_token_id:
                raise RuntimeError(f"tokenizer did not keep {self.tokenizer.bos_token!r} as one token")
            ids = anchored[1:]
        if piece.kind != "message":
            self._fixed_ids[key] = ids
        return ids

    def _truncate(self, encoded: _Encoded, sid: str) -> None:
        """Cut to max_length, keeping media blocks whole and at least one trained token."""
        limit = self.max_length
        if len(encoded.ids) > limit:
            for name, start, stop in encoded.blocks:
                if stop > limit:
                    raise SampleError(
                        sid,
                        f"max_length={limit} cuts the {name} tokens at positions {start}..{stop - 1} "
                        f"(the sample has {len(encoded.ids)} tokens)",
                    )
            del encoded.ids[limit:], encoded.trained[limit:]
        if not any(encoded.trained):
            raise SampleError(sid, f"every assistant token lies beyond max_length={limit}; nothing to train on")

    # --- tensors -------------------------------------------------------------------------
    def _sample(self, sid: str, encoded: _Encoded, sources: Mapping[str, MediaInput]) -> Sample:
        input_ids = torch.tensor(encoded.ids, dtype=torch.long)
        labels = torch.where(torch.tensor(encoded.trained), input_ids, IGNORE_INDEX)
        sample = Sample(sid, input_ids, labels)
        for name in sorted(sources):
            if self.features is not None and self.features.has(name, sources[name]):
                features, meta = self.features.get(name, sources[name])
                sample.media[name] = features
                sample.media_meta[name] = MediaMeta(str(sources[name]), meta.size, meta.duration)
                sample.encoded.add(name)
            else:
                sample.media[name], sample.media_meta[name] = self._load_media(name, sources[name], sid)
        return sample

    def _load_media(self, name: str, source: MediaInput, sid: str) -> tuple[torch.Tensor, MediaMeta]:
        modality = self.modalities[name]
        try:
            media = source if isinstance(source, Media) else modality.load(source)
            return modality.transform(media, train=self.train), MediaMeta.of(media)
        except MediaError as e:
            raise SampleMediaError(sid, e) from e
