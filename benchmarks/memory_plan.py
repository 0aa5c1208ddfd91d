"""The 7B memory plan: GPU bytes per rank per stage and strategy, and host RSS at build.

    python benchmarks/memory.py --plan [--measured memory.json] [--out plan.json]

Parameter counts come from meta-device modules (no weights, no downloads): the decoder from
Vicuna-7B v1.5's LlamaConfig, the modalities as ``build_modality`` makes them at the
reference recipes' shapes (CLIP ViT-L/14 at 336 px for images; CLIP ViT-L/14 at 224 px +
BLIP-2's 12-layer, 32-query Q-Former per video frame; ImageBind-huge's audio branch, built on the CPU: its constructor
cannot run on meta) with
their adapters at d_model 4096.

Formulas (bytes per rank; P_all every parameter, P_t the trainable ones, N ranks,
recipes' precision bf16-mixed):
- ddp: fp32 parameters 4 P_all (they are the masters); gradients 4 P_t + DDP's bucket copy
  4 P_t; AdamW moments 8 P_t.
- fsdp (full shard, LlamaDecoderLayer units, the rest in the root unit): fp32 shards
  4 P_all / N plus the bf16 gathers alive at once: the root unit (embeddings, LM head,
  encoders, adapters) for the whole step and two decoder layers (current + prefetched);
  gradients 4 / N of every unit holding a trainable parameter (a flat parameter's gradient
  covers its frozen parts too); AdamW 8 P_t / N.
- deepspeed_stage_2: bf16 parameters 2 P_all; fp32 masters 4 P_t / N; bf16 gradient
  partitions 2 P_t / N plus Lightning's reduce and all-gather buckets (2e8 elements each,
  0.8 GB in bf16); AdamW 8 P_t / N.
- activations with layer checkpointing, bf16, SDPA (no T x T scores kept): the input of
  every layer, 2 B T h each, plus one layer's activations while it is recomputed,
  B T (14 h + 8 I) (normed input, Q, K, V, attention output, residual, norms: 14 h; gate,
  up, SiLU(gate), product: 8 I), plus the embeddings and final hidden state 4 B T h, plus
  the LM head on labelled positions only: f B T V (bf16 logits + fp32 copy + fp32
  gradient = 10 bytes). T is data.max_length (an upper bound: batches are padded to their
  longest sample), f = 0.25 of positions labelled. Without checkpointing every layer keeps
  B T (14 h + 8 I). Encoder activations are not counted (frozen, no_grad, freed per batch).
- host RSS per rank at build: the issue's bound 1.5 x decoder bf16 bytes + 1.5 GB; with
  ``--measured``, the measured build+step bytes above 1 GB (the interpreter) per weight
  byte, applied to the 7B decoder, + 1 GB.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from decoder_shapes import SHAPES  # noqa: E402

GB = 1e9
RANKS = 8  # GPUs of one node
LABELLED_FRACTION = 0.25  # f: share of positions whose next token is labelled
DEEPSPEED_BUCKETS_BYTES = 2 * 2e8 * 2  # Lightning's reduce + all-gather buckets, bf16
PROCESS_BASE_BYTES = 1 * GB  # RSS of the interpreter before any weight (tiny shape: ~1 GB)
GPU_BYTES = 80 * 2**30  # an 80 GB A100/H100
STAGES = {  # name: (per-GPU batch, decoder trains) from recipes/stage1..3.yaml
    "1": (64, False),
    "2": (32, True),
    "3": (32, True),
}
STRATEGIES = ("ddp", "fsdp", "deepspeed_stage_2")
MAX_LENGTH = 2048  # data.max_length of recipes/base.yaml
CLIP_L = {"patch_size": 14, "hidden_size": 1024, "num_layers": 24, "num_heads": 16}
BLIP2_QFORMER = {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "num_queries": 32,
                 "cross_attention_frequency": 2}
NUM_NEW_TOKENS_PER_MODALITY = 3  # <xx_start>, <xx_patch>, <xx_end>


@dataclass(frozen=True)
class Counts:
    decoder: int
    decoder_layer: int  # one LlamaDecoderLayer
    decoder_layers: int  # how many
    hidden: int
    intermediate: int
    vocab: int
    encoders: int
    adapters: int
    new_rows: int  # input-embedding parameters of the modality tokens

    @property
    def all(self) -> int:
        return self.decoder + self.encoders + self.adapters

    @property
    def root_unit(self) -> int:
        """What FSDP's root unit holds: everything outside the decoder layers."""
        return self.all - self.decoder_layers * self.decoder_layer


def count_reference() -> Counts:
    from transformers import LlamaForCausalLM

    from modalities import build_modality
    from modalities.audio import AudioConfig
    from modalities.imagebind_audio import ENCODER_SIZES, ImageBindAudioEncoder
    from modalities.qformer import QFormerAdapter

    shape = SHAPES["7b"]
    d = shape.hidden_size
    with torch.device("meta"):
        decoder = LlamaForCausalLM(shape.llama_config())
        image = build_modality("image", {"encoder": "tiny", "image_size": 336, "tiny": CLIP_L}, d_model=d)
        video = build_modality("video", {"num_frames": 64, "image_size": 224, "frame_encoder": "tiny",
                                         "frame_qformer": "tiny", "tiny_encoder": CLIP_L,
                                         "tiny_qformer": BLIP2_QFORMER}, d_model=d)
        huge = ENCODER_SIZES["huge"]
        audio_adapter = QFormerAdapter(AudioConfig().qformer_config(huge.out_dim), d)

    # ImageBind's trunk calls .item() while it is built, which the meta device refuses: the
    # audio branch (~0.1B parameters, ~0.4 GB in fp32) is built on the CPU.
    audio_encoder = ImageBindAudioEncoder(huge)

    def n(module) -> int:
        return sum(p.numel() for p in module.parameters())

    return Counts(
        decoder=n(decoder), decoder_layer=n(decoder.model.layers[0]), decoder_layers=len(decoder.model.layers),
        hidden=d, intermediate=shape.intermediate_size, vocab=shape.vocab_size,
        encoders=n(image.encoder) + n(video.encoder) + n(audio_encoder),
        adapters=n(image.adapter) + n(video.adapter) + n(audio_adapter),
        new_rows=3 * NUM_NEW_TOKENS_PER_MODALITY * d,
    )


def activations(c: Counts, batch: int, seq: int, checkpointing: bool) -> float:
    h, i = c.hidden, c.intermediate
    per_layer = batch * seq * (14 * h + 8 * i)
    layers = c.decoder_layers * (2 * batch * seq * h + per_layer) if not checkpointing else \
        c.decoder_layers * 2 * batch * seq * h + per_layer
    return layers + 4 * batch * seq * h + LABELLED_FRACTION * batch * seq * c.vocab * 10


def gpu_bytes(c: Counts, strategy: str, decoder_trains: bool, batch: int, seq: int = MAX_LENGTH) -> dict:
    trainable = (c.decoder if decoder_trains else c.new_rows) + c.adapters
    if strategy == "ddp":
        params, grads, optim = 4 * c.all, 8 * trainable, 8 * trainable
    elif strategy == "fsdp":
        params = 4 * c.all / RANKS + 2 * (c.root_unit + 2 * c.decoder_layer)
        grad_units = c.all if decoder_trains else c.root_unit  # the decoder layers hold no trainable part in stage 1
        grads, optim = 4 * grad_units / RANKS, 8 * trainable / RANKS
    elif strategy == "deepspeed_stage_2":
        params = 2 * c.all
        grads = 2 * trainable / RANKS + DEEPSPEED_BUCKETS_BYTES
        optim = (4 + 8) * trainable / RANKS  # fp32 masters + AdamW moments
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    act = activations(c, batch, seq, checkpointing=True)
    total = params + grads + optim + act
    return {"trainable_params": trainable, "params": params, "grads": grads, "optimizer": optim,
            "activations": act, "activations_no_checkpointing": activations(c, batch, seq, checkpointing=False),
            "total": total, "fits_80gb": total <= GPU_BYTES}


def host_rss(c: Counts, measured: Path | None) -> dict:
    weights = 2 * c.decoder  # bf16 checkpoint bytes
    out = {"decoder_bf16_bytes": weights, "bound_bytes": 1.5 * weights + 1.5 * GB}
    if measured:
        data = json.loads(measured.read_text())
        row = next(r for r in data["rows"] if r["key"] == "build_step")
        # Bytes per weight byte above the ~1 GB an interpreter with torch, Lightning and
        # transformers holds anyway (measured with the tiny shape: 0.9-1.2 GB).
        out["measured_ratio"] = max(0.0, row["bytes"] - PROCESS_BASE_BYTES) / row["reference_bytes"]
        out["measured_shape"] = data["shape"]
        out["extrapolated_bytes"] = out["measured_ratio"] * weights + PROCESS_BASE_BYTES
    return out


def plan(measured: Path | None = None) -> dict:
    c = count_reference()
    rows = [{"stage": stage, "strategy": strategy, "batch": batch, "seq": MAX_LENGTH,
             **gpu_bytes(c, strategy, trains, batch)}
            for stage, (batch, trains) in STAGES.items() for strategy in STRATEGIES]
    return {"counts": c.__dict__, "ranks": RANKS, "rows": rows, "host": host_rss(c, measured)}


def print_plan(result: dict) -> None:
    c = result["counts"]
    print(f"7B reference: decoder {c['decoder']:,} params, encoders {c['encoders']:,} (frozen), "
          f"adapters {c['adapters']:,}, new embedding rows {c['new_rows']:,}; {result['ranks']} GPUs, "
          f"bf16-mixed, gradient checkpointing on, T = data.max_length {MAX_LENGTH}")
    header = ("stage", "strategy", "batch x T", "params", "grads", "AdamW+masters", "activations",
              "total GB/GPU", "act. w/o ckpt")
    cells = [header]
    for r in result["rows"]:
        cells.append((r["stage"], r["strategy"], f"{r['batch']} x {r['seq']}",
                      *(f"{r[k] / GB:.1f}" for k in ("params", "grads", "optimizer", "activations", "total",
                                                     "activations_no_checkpointing"))))
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print(" | ".join(f"{v:<{w}}" if j < 3 else f"{v:>{w}}" for j, (v, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    host = result["host"]
    line = (f"host RSS per rank at build: <= {host['bound_bytes'] / GB:.1f} GB by the issue's bound "
            f"(1.5 x {host['decoder_bf16_bytes'] / GB:.1f} GB + 1.5 GB; x{result['ranks']} = "
            f"{result['ranks'] * host['bound_bytes'] / GB:.0f} GB per node)")
    if "measured_ratio" in host:
        line += (f"; the measured {host['measured_shape']} (peak - 1 GB) / weights = {host['measured_ratio']:.2f} gives "
                 f"{host['extrapolated_bytes'] / GB:.1f} GB per rank")
    print(line)


def main(out: Path | None = None, measured: Path | None = None) -> int:
    result = plan(measured)
    print_plan(result)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    return 0
