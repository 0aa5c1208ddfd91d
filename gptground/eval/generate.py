"""Batched greedy answers from a GroundingModel: the engine of evaluation and the Python API.

Prompts are built by the same Processor as training samples (so the prompt is exactly the
training prefix), left-padded so every prompt ends in the last column, and decoded until
the template's stop text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gptground.collate import collate
from gptground.conversation import Turn
from gptground.processor import MediaMeta, Processor


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
    """The decoded answer to a Query, with what its media turned out to be."""

    id: str
    text: str
    media_meta: dict[str, MediaMeta]


def cut_at_stop(text: str, stop: str) -> str:
    """The answer before the template's stop text (generation may run past it)."""
    return text.split(stop, 1)[0].strip()


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def answer_queries(
    model,
    processor: Processor,
    queries: Sequence[Query],
    batch_size: int = 16,
    max_new_tokens: int = 48,
    logits_processor=None,
) -> list[Answer]:
    """Greedy answers to ``queries``, in order."""
    model.eval()
    device = next(model.parameters()).device
    tokenizer = processor.tokenizer
    answers = []
    for chunk in _batches(list(queries), batch_size):
        samples = [processor.prompt(q.question, media=q.media, sample_id=q.id) for q in chunk]
        batch = collate(samples, tokenizer.pad_token_id, padding_side="left")
        media = {k: v.to(device) for k, v in batch["media"].items()}
        index = {k: v.to(device) for k, v in batch["media_index"].items()}
        out = model.generate(
            batch["input_ids"].to(device),
            batch["attention_mask"].to(device),
            model.media_tokens(media),
            index,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=logits_processor,
        )
        texts = tokenizer.batch_decode(out, skip_special_tokens=True)
        for sample, text in zip(samples, texts):
            stop = processor.template.stop
            answers.append(Answer(sample.sample_id, cut_at_stop(text, stop), dict(sample.media_meta)))
    return answers
