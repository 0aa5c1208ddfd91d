"""A LLaMA-style tokenizer built inside the tests (nothing downloaded).

BPE with byte fallback and a "▁" put before the start of every input, wrapped in
transformers' own ``LlamaTokenizer`` as it is built for Vicuna. With such a tokenizer a
naive piece-by-piece encoding inserts a space at every piece boundary; the processor's
ids must decode to exactly the rendered text instead.
"""

from __future__ import annotations

import json
from functools import cache

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaTokenizer

from gptground.conversation import get_template, template_names

SENTENCES = (
    "Where is the man in red? He is at [0.123, 0.456, 0.789, 0.900].",
    "When does the dog turn around? In {0.09,0.15}.",
    "What sound is it? A dog barks.",
)


@cache
def llama_like_tokenizer() -> LlamaTokenizer:
    """A small LlamaTokenizer (about 600 tokens) trained on template text and a few sentences."""
    corpus = list(SENTENCES)
    for name in template_names():
        template = get_template(name)
        corpus += [template.system, *template.roles, *template.seps]
    tok = Tokenizer(models.BPE(byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(corpus * 20, trainer)
    vocab = tok.get_vocab()
    for byte in range(256):  # LLaMA's byte-fallback pieces, for characters never seen in training
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    merges = [tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]
    return LlamaTokenizer(vocab=vocab, merges=merges, legacy=False)
