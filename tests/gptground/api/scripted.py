"""A decoder whose answer is fixed by construction, for tests that check values end to end.

``script_answers(monkeypatch, tokenizer, text)`` makes every LlamaForCausalLM answer ``text``
followed by the template's stop: the real forward runs (prompt embedding, media tokens,
KV cache, HF's greedy loop), and only the logits of the position being generated are
replaced by a one-hot on the script's next token (then EOS). Everything after the decoder —
stop-text cutting, parsing, de-normalising 0-1 coordinates to pixels of the original image
or seconds of the clip — is the production code under test.
"""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import LlamaForCausalLM


def script_answers(monkeypatch, tokenizer, text: str, stop: str = "###") -> list[str]:
    """Install the script; returns the list that collects each generated answer's prompt length."""
    script = tokenizer(text + stop, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert tokenizer.decode(script[:-1]) == text + stop, "the script must decode to its own text"
    real_forward = LlamaForCausalLM.forward
    state = {"step": 0}
    prompts: list[str] = []

    def forward(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        if kwargs.get("inputs_embeds") is not None:  # the prompt: generation starts here
            state["step"] = 0
            prompts.append(kwargs["inputs_embeds"].shape[1])
        token = script[min(state["step"], len(script) - 1)]
        state["step"] += 1
        forced = torch.full_like(out.logits[:, -1], torch.finfo(out.logits.dtype).min)
        forced[:, token] = 0.0
        out.logits = out.logits.clone()
        out.logits[:, -1] = forced
        return out

    monkeypatch.setattr(LlamaForCausalLM, "forward", forward)
    return prompts
