"""Batched greedy answers from a GroundingModel: the engine of evaluation and the Python API.

Prompts are built by the same Processor as training samples (so the prompt is exactly the
training prefix), left-padded so every prompt ends in the last column, and decoded until
the template's stop text. Media tokens are either encoded here, per batch, or handed in
already computed (the Python API encodes a video once for many questions).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerBase

from gptground.collate import collate
from gptground.conversation import Turn
from gptground.processor import MediaMeta, Processor, Sample, SampleMediaError


@dataclass
class Query:
    """One question to answer.

    Attributes:
        id: names the query in outputs and errors.
        question: the question, or a conversation whose last turn is a human one.
        media: modality name -> file path / URL / decoded Media.
    """

    id: str
    question: str | Sequence[Turn]
    media: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Answer:
    """The decoded answer to a Query, with what its media turned out to be.

    ``error`` is set (and ``text`` empty) when the question could not be asked because its
    media failed to load: the message names the file and says why.
    """

    id: str
    text: str
    media_meta: dict[str, MediaMeta]
    error: str | None = None


MEDIA_ERROR_POLICIES = ("raise", "empty_answer")
"""What ``answer_queries`` does with a query whose media fail to load."""


def cut_at_stop(text: str, stop: str) -> str:
    """The answer before the template's stop text (generation may run past it)."""
    return text.split(stop, 1)[0].strip()


def batches(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of ``items`` of ``size`` (the last one may be shorter)."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def inference_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 on a GPU that has it, float16 on an older GPU, float32 on CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def model_placement(model) -> tuple[torch.device, torch.dtype]:
    """(device, dtype) of a model's weights."""
    parameter = next(model.parameters())
    return parameter.device, parameter.dtype


def to_model(x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Move to the model's device; floating inputs (pixels, fbanks) also take its dtype."""
    return x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)


class EndAfterStop(LogitsProcessor):
    """Forces EOS in a row once its generated text contains the template's stop text.

    The decoder's EOS is not the template's stop (``###`` for GroundingGPT), so without this
    every row would run to ``max_new_tokens``; with it, generation ends when all rows stop.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop: str):
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token to end answers with")
        self.tokenizer = tokenizer
        self.stop = stop

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (B, generated so far); a decoder given inputs_embeds passes only new ids
        texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        for row, text in enumerate(texts):
            if self.stop in text:
                scores[row] = torch.finfo(scores.dtype).min
                scores[row, self.tokenizer.eos_token_id] = 0.0
        return scores


def _stacked_tokens(
    per_sample: Sequence[Mapping[str, torch.Tensor]], media_index: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """name -> (B_m, N, d_model) from each sample's (N, d_model), in ``media_index`` order."""
    return {name: torch.stack([per_sample[row][name] for row in rows.tolist()]) for name, rows in media_index.items()}


@torch.no_grad()
def generate_batch(
    model,
    processor: Processor,
    samples: Sequence[Sample],
    max_new_tokens: int = 48,
    logits_processor: Sequence[LogitsProcessor] | None = None,
    sample_tokens: Sequence[Mapping[str, torch.Tensor]] | None = None,
) -> list[str]:
    """Greedy answers to prompt samples (one batch), cut at the template's stop text.

    Args:
        model: a GroundingModel (in eval mode, on its device and dtype).
        processor: the processor that made ``samples``.
        samples: prompts from ``processor.prompt``.
        max_new_tokens: the most tokens generated per answer.
        logits_processor: extra processors (e.g. constrained coordinates), applied first.
        sample_tokens: per sample, modality name -> (N, d_model) media tokens computed
            before; None encodes the batch's media here.

    Returns:
        One answer text per sample, in order.
    """
    tokenizer = processor.tokenizer
    device, dtype = model_placement(model)
    batch = collate(samples, tokenizer.pad_token_id, padding_side="left")
    index = {name: rows.to(device) for name, rows in batch["media_index"].items()}
    if sample_tokens is None:
        media = {k: to_model(v, device, dtype) for k, v in batch["media"].items()}
        media_tokens = model.media_tokens(media, batch["encoded"])
    else:
        media_tokens = _stacked_tokens(sample_tokens, batch["media_index"])
    stop = processor.template.stop
    processors = LogitsProcessorList([*(logits_processor or ()), EndAfterStop(tokenizer, stop)])
    out = model.generate(
        batch["input_ids"].to(device),
        batch["attention_mask"].to(device),
        media_tokens,
        index,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        logits_processor=processors,
    )
    texts = tokenizer.batch_decode(out, skip_special_tokens=True)
    return [cut_at_stop(text, stop) for text in texts]


@torch.no_grad()
def answer_queries(
    model,
    processor: Processor,
    queries: Sequence[Query],
    batch_size: int = 16,
    max_new_tokens: int = 48,
    logits_processor: Sequence[LogitsProcessor] | None = None,
    on_media_error: str = "raise",
) -> list[Answer]:
    """Greedy answers to ``queries``, in order; each batch's media are encoded together.

    ``on_media_error``: "raise" lets a query whose media fail to load raise its
    ``SampleMediaError``; "empty_answer" gives it an empty ``Answer`` whose ``error`` names
    the file, and answers the other queries of its batch.
    """
    if on_media_error not in MEDIA_ERROR_POLICIES:
        raise ValueError(f"on_media_error must be one of {MEDIA_ERROR_POLICIES}, got {on_media_error!r}")
    model.eval()
    answers = []
    for chunk in batches(list(queries), batch_size):
        prompts = [_prompt_or_failure(processor, q, on_media_error) for q in chunk]
        texts: dict[int, str] = {}
        for group in _stackable_groups(prompts):
            generated = generate_batch(model, processor, [prompts[i] for i in group], max_new_tokens, logits_processor)
            texts.update(zip(group, generated))
        for i, p in enumerate(prompts):  # input order, failures in their places
            answers.append(Answer(p.sample_id, texts[i], dict(p.media_meta)) if isinstance(p, Sample) else p)
    return answers


def _stackable_groups(prompts: Sequence[Sample | Answer]) -> list[list[int]]:
    """Positions of the samples among ``prompts``, grouped so that each group's media stack:
    one group unless inputs differ in shape, e.g. clips shorter than ``num_frames`` under
    ``preprocess: groundinggpt`` (the release reads each of their frames once: (T < F, 3, S, S))."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prompts):
        if isinstance(p, Sample):
            shapes = tuple(sorted((name, tuple(x.shape), name in p.encoded) for name, x in p.media.items()))
            groups.setdefault(shapes, []).append(i)
    return list(groups.values())


def _prompt_or_failure(processor: Processor, query: Query, on_media_error: str) -> Sample | Answer:
    try:
        return processor.prompt(query.question, media=query.media, sample_id=query.id)
    except SampleMediaError as e:
        if on_media_error == "raise":
            raise
        return Answer(query.id, "", {}, error=str(e.media_error))
