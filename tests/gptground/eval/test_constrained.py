"""Constrained decoding: every opened box or span literal is completed well formed."""

from __future__ import annotations

import pytest
import torch

from gptground.eval.constrained import SHAPES, CoordinateConstraint, advance
from gptground.grounding import get_format
from gptground.tokenizer import load_tokenizer

BOX = SHAPES["groundinggpt"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("builtin:tiny")


@pytest.fixture(scope="module")
def constraint(tokenizer):
    return CoordinateConstraint(tokenizer, "groundinggpt")


def test_the_state_machine_follows_the_literal():
    assert advance(BOX, None, "at ") is None
    assert advance(BOX, None, "[0.1") == ("[", 4)
    assert advance(BOX, None, "[0.123, 0.456, 0.789, 1.000] done") is None
    assert advance(BOX, None, "[0.12a") == "dead"
    assert advance(BOX, None, "[2.") == "dead"  # fractions of the padded square: 0 or 1 first
    assert advance(BOX, None, "{0.25,0.61}") is None


def _decode_with_random_logits(tokenizer, constraint, prefix: str, steps: int, seed: int) -> str:
    """Greedy decoding where the 'model' is random noise and only the constraint has sense."""
    generator = torch.Generator().manual_seed(seed)
    ids = tokenizer.encode(prefix, add_special_tokens=False)
    for _ in range(steps):
        scores = torch.randn(1, len(tokenizer), generator=generator)
        scores = constraint(torch.tensor([ids]), scores)
        ids.append(int(scores.argmax()))
    return tokenizer.decode(ids)


@pytest.mark.parametrize("seed", range(3))
def test_random_logits_still_give_a_parseable_box_and_span(tokenizer, constraint, seed):
    box_text = _decode_with_random_logits(tokenizer, constraint, "It is at [", 40, seed)
    parsed = get_format("groundinggpt").parse(box_text[: box_text.index("]") + 1], image_size=(80, 48))
    assert len(parsed.boxes) == 1 and not parsed.failures
    span_text = _decode_with_random_logits(tokenizer, constraint, "In {", 20, seed)
    parsed = get_format("groundinggpt").parse(span_text[: span_text.index("}") + 1], duration=4.0)
    assert len(parsed.spans) == 1 and not parsed.failures


def test_outside_a_literal_only_tokens_that_break_one_are_masked(tokenizer, constraint):
    prefix = torch.tensor([tokenizer.encode("The answer", add_special_tokens=False)])
    out = constraint(prefix, torch.zeros(1, len(tokenizer)))
    masked = set((out[0] < 0).nonzero().flatten().tolist())
    breaking = {i for i, text in enumerate(constraint.texts) if advance(BOX, None, text) == "dead"}
    assert masked == breaking
    assert out[0, tokenizer.eos_token_id] == 0 and out[0, tokenizer.encode("[", add_special_tokens=False)[0]] == 0


def test_inside_a_literal_only_its_next_characters_are_allowed(tokenizer, constraint):
    prefix = torch.tensor([tokenizer.encode("It is at [0.", add_special_tokens=False)])
    out = constraint(prefix, torch.zeros(1, len(tokenizer)))
    allowed = (out[0] == 0).nonzero().flatten().tolist()
    assert allowed and all(constraint.texts[i][0].isdigit() for i in allowed)
    assert out[0, tokenizer.eos_token_id] < 0  # an open box cannot end the answer


def test_unsupported_format_is_refused(tokenizer):
    with pytest.raises(ValueError, match="supports the formats"):
        CoordinateConstraint(tokenizer, "kosmos2")
