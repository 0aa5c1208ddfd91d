"""Decoding constrained to well-formed coordinates.

Once an answer opens a box (``[``) or a span (``{``), only tokens that keep the text a
prefix of the format's literal are allowed until it closes: for ``groundinggpt`` a box is
``[?.###, ?.###, ?.###, ?.###]`` and a span ``{?.##,?.##}`` (``#`` any digit, ``?`` 0 or 1),
exactly what the writers in :mod:`gptground.grounding` produce. Outside brackets the model
writes freely, except that a token which would open a bracket and break it at once is
masked. Greedy decoding under the constraint can still pick wrong numbers: it only rules
out answers that cannot be parsed.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase

ANY_DIGIT = "#"
UNIT_DIGIT = "?"  # the integer part of a 0-1 fraction

SHAPES: dict[str, dict[str, str]] = {
    "groundinggpt": {"[": "[?.###, ?.###, ?.###, ?.###]", "{": "{?.##,?.##}"},
    "shikra": {"[": "[?.###,?.###,?.###,?.###]"},
}
"""Format name -> opening character -> the literal's shape."""

_DEAD = "dead"  # a state no continuation can repair
State = tuple[str, int] | None  # (opener, position in its shape), or None outside brackets


def _fits(char: str, slot: str) -> bool:
    if slot == ANY_DIGIT:
        return char in "0123456789"
    if slot == UNIT_DIGIT:
        return char in "01"
    return char == slot


def advance(shapes: dict[str, str], state: State, text: str) -> State | str:
    """The state after ``text``, or ``"dead"`` when ``text`` breaks an open literal."""
    for char in text:
        if state is None:
            if char in shapes:
                state = (char, 1)
            continue
        opener, position = state
        shape = shapes[opener]
        if not _fits(char, shape[position]):
            return _DEAD
        state = None if position + 1 == len(shape) else (opener, position + 1)
    return state


def _recovering_state(shapes: dict[str, str], text: str) -> State:
    """The state at the end of already generated text; a broken literal counts as closed."""
    state: State = None
    for char in text:
        after = advance(shapes, state, char)
        state = None if after == _DEAD else after
    return state


def token_texts(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The text each token id adds after other text (a leading space kept), by id."""
    anchor_id = tokenizer.encode("a", add_special_tokens=False)[0]
    anchor = tokenizer.decode([anchor_id], clean_up_tokenization_spaces=False)
    texts = []
    for token_id in range(len(tokenizer)):
        joined = tokenizer.decode([anchor_id, token_id], clean_up_tokenization_spaces=False)
        texts.append(joined[len(anchor) :])
    return texts


class CoordinateConstraint(LogitsProcessor):
    """A LogitsProcessor that keeps every opened box or span literal well formed.

    Args:
        tokenizer: the model's tokenizer.
        fmt: a format name of :data:`SHAPES`.

    Raises:
        ValueError: an unsupported format, or a tokenizer that cannot spell the literal's
            characters one token at a time.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, fmt: str = "groundinggpt"):
        if fmt not in SHAPES:
            raise ValueError(f"constrained decoding supports the formats {sorted(SHAPES)}, not {fmt!r}")
        self.tokenizer = tokenizer
        self.shapes = SHAPES[fmt]
        self.texts = token_texts(tokenizer)
        charset = set("0123456789").union(*self.shapes.values())
        # only these tokens can continue an open literal; only those can open or break one
        self._inner = [i for i, t in enumerate(self.texts) if t and set(t) <= charset]
        self._openers = [i for i, t in enumerate(self.texts) if any(c in self.shapes for c in t)]
        self._check_spellable(charset, fmt)

    def _check_spellable(self, charset: set[str], fmt: str) -> None:
        singles = {self.texts[i] for i in self._inner if len(self.texts[i]) == 1}
        missing = sorted(charset - singles)
        if missing:
            raise ValueError(
                f"constrained decoding ({fmt}) needs a single-character token for each of "
                f"{missing}, which this tokenizer lacks"
            )

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # input_ids: (B, generated so far); scores: (B, vocab) next-token logits
        generated = self.tokenizer.batch_decode(input_ids, clean_up_tokenization_spaces=False)
        lowest = torch.finfo(scores.dtype).min
        for row, text in enumerate(generated):
            state = _recovering_state(self.shapes, text)
            if state is None:
                broken = [i for i in self._openers if advance(self.shapes, None, self.texts[i]) == _DEAD]
                scores[row, broken] = lowest
            else:
                allowed = [i for i in self._inner if advance(self.shapes, state, self.texts[i]) != _DEAD]
                kept = scores[row, allowed].clone()
                scores[row] = lowest
                scores[row, allowed] = kept
        return scores
