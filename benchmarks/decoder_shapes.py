"""LLaMA-shape decoders made on the fly for the benchmarks: shapes, HF folders, tokenizers.

A decoder folder is what ``model.decoder.path`` reads: ``config.json`` plus bf16
``model.safetensors`` (random weights, N(0, 0.02) like Hugging Face's init; norms 1). It is
built on the meta device and written tensor by tensor, so making the 0.83B folder costs
about one copy of its weights and a few seconds.

A tokenizer folder is the shipped tiny byte-level BPE with unreachable filler entries
appended up to the decoder's vocabulary size: the decoder's vocab then covers the
tokenizer exactly, as Vicuna's 32,000 rows cover its tokenizer, and the modality tokens
grow it by a few rows (``_grow_embeddings`` in gptground/model/build.py).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_TOKENIZER = ROOT / "gptground" / "assets" / "tokenizer"
INIT_STD = 0.02  # Hugging Face's LLaMA initializer_range


@dataclass(frozen=True)
class DecoderShape:
    hidden_size: int  # d_model
    num_layers: int
    num_heads: int
    intermediate_size: int  # SwiGLU width
    vocab_size: int  # rows of the embedding and the LM head (untied)
    max_position_embeddings: int = 2048
    num_key_value_heads: int | None = None  # None: = num_heads (no GQA, as in LLaMA-2 7B)

    def llama_config(self, attn_implementation: str = "sdpa") -> LlamaConfig:
        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_key_value_heads or self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            tie_word_embeddings=False,
            attn_implementation=attn_implementation,
        )

    def num_parameters(self) -> int:
        """Exact parameter count, from the meta-device module (no memory used)."""
        with torch.device("meta"):
            model = LlamaForCausalLM(self.llama_config())
        return sum(p.numel() for p in model.parameters())


SHAPES = {
    # 834,479,616 parameters, 1.67 GB in bf16: the "0.83B LLaMA-shape decoder".
    "0.83b": DecoderShape(hidden_size=1536, num_layers=24, num_heads=16, intermediate_size=4608, vocab_size=32000),
    # Vicuna-7B v1.5 (lmsys/vicuna-7b-v1.5 config.json): 6,738,415,616 parameters.
    "7b": DecoderShape(hidden_size=4096, num_layers=32, num_heads=32, intermediate_size=11008, vocab_size=32000,
                       max_position_embeddings=4096),
    # Seconds on CPU: tests and smoke runs. The vocab just covers the tiny tokenizer.
    "tiny": DecoderShape(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=172, vocab_size=2048,
                         max_position_embeddings=512),
}
SHAPE_KEYS = {"hidden": "hidden_size", "layers": "num_layers", "heads": "num_heads",
              "intermediate": "intermediate_size", "vocab": "vocab_size", "positions": "max_position_embeddings",
              "kv_heads": "num_key_value_heads"}


def parse_shape(spec: str) -> DecoderShape:
    """A named shape (``0.83b``, ``7b``, ``tiny``) or ``hidden=1024,layers=8,heads=8,intermediate=2816,vocab=32000``."""
    if spec in SHAPES:
        return SHAPES[spec]
    fields = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in SHAPE_KEYS:
            raise ValueError(f"--shape {spec!r}: expected one of {sorted(SHAPES)} or key=value pairs "
                             f"with keys {sorted(SHAPE_KEYS)}; bad item {item!r}")
        fields[SHAPE_KEYS[key.strip()]] = int(value)
    missing = {"hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size"} - set(fields)
    if missing:
        raise ValueError(f"--shape {spec!r}: missing {sorted(k for k, v in SHAPE_KEYS.items() if v in missing)}")
    if fields["hidden_size"] % fields["num_heads"]:
        raise ValueError(f"--shape {spec!r}: hidden ({fields['hidden_size']}) must divide by heads ({fields['num_heads']})")
    return DecoderShape(**fields)


def _random_like(name: str, shape: torch.Size) -> torch.Tensor:
    if name.endswith("norm.weight"):
        return torch.ones(shape, dtype=torch.bfloat16)
    return torch.empty(shape, dtype=torch.bfloat16).normal_(0.0, INIT_STD)


def write_decoder_folder(path: str | os.PathLike, shape: DecoderShape, seed: int = 0) -> int:
    """Write a Hugging Face LLaMA folder (config.json + bf16 model.safetensors); returns the weight bytes."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = shape.llama_config()
    config.dtype = torch.bfloat16  # what from_pretrained reports as the checkpoint's dtype
    with torch.device("meta"):
        names = {name: p.shape for name, p in LlamaForCausalLM(config).state_dict().items()}
    torch.manual_seed(seed)
    state = {name: _random_like(name, size) for name, size in names.items()}
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(str(path))
    return sum(t.numel() * t.element_size() for t in state.values())


def write_tokenizer_folder(path: str | os.PathLike, vocab_size: int) -> None:
    """The shipped tiny tokenizer padded with unreachable entries to exactly ``vocab_size`` ids.

    The filler strings contain no byte-level alphabet merge path, so no text ever encodes to
    them: the tokenizer behaves as the shipped one, only its length is the decoder's vocab.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    spec = json.loads((BUILTIN_TOKENIZER / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size {vocab_size} is smaller than the tiny tokenizer's {len(vocab)} tokens")
    for i in range(len(vocab), vocab_size):
        vocab[f"<filler_{i}>"] = i
    (path / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    shutil.copy(BUILTIN_TOKENIZER / "tokenizer_config.json", path / "tokenizer_config.json")


def shape_dict(shape: DecoderShape) -> dict:
    return asdict(shape)
