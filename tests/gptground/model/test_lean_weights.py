"""Weights are streamed to files and read into models built without initial weights."""

from __future__ import annotations

import pytest
import torch
from gptground.training.fsdp_checkpoint import ShardedFSDPStrategy
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from gptground.config import DecoderConfig, LoraConfig
from gptground.model import build as build_module
from gptground.model.decoder import build_decoder
from gptground.model.lora import add_lora, merged_state_dict
from gptground.model.meta import materialize, meta_parameter_names, parameters_on_meta
from gptground.model.safetensors_io import read_weights_into, write_file
from gptground.training import run as run_module
from modalities import CheckpointFormatError


def test_written_files_read_back_by_safetensors_with_shared_and_strided_tensors(tmp_path):
    base = torch.randn(6, 4)
    state = {"a": base, "tied": base, "column": base[:, 1], "half": torch.randn(3).half(),
             "ids": torch.arange(5), "flag": torch.tensor([True, False])}
    write_file(state, str(tmp_path / "w.safetensors"))
    back = load_file(str(tmp_path / "w.safetensors"))
    assert back.keys() == state.keys() and all(torch.equal(back[k], v) for k, v in state.items())


def test_reading_fills_destinations_in_their_own_dtype(tmp_path):
    state = {"w": torch.randn(4, 3), "skipped": torch.ones(2)}
    write_file(state, str(tmp_path / "w.safetensors"))
    same, other = torch.empty(4, 3), torch.empty(4, 3, dtype=torch.bfloat16)
    found = read_weights_into([str(tmp_path / "w.safetensors")], {"w": same})
    read_weights_into([str(tmp_path / "w.safetensors")], {"w": other})
    assert found == {"w", "skipped"}
    assert torch.equal(same, state["w"]) and torch.equal(other, state["w"].bfloat16())


def test_parameters_on_meta_keeps_buffers_and_ties():
    config = LlamaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, tie_word_embeddings=True)
    with parameters_on_meta():
        model = LlamaForCausalLM(config)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert model.model.rotary_emb.inv_freq.device.type == "cpu"  # computed, never saved: real
    materialize(model, torch.bfloat16)
    assert not meta_parameter_names(model)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert model.lm_head.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("shard", [None, "40KB"])
def test_hf_decoder_folder_is_read_into_the_target_dtype(tmp_path, shard):
    torch.manual_seed(0)
    reference = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=64))
    reference.save_pretrained(tmp_path / "llama", **({"max_shard_size": shard} if shard else {}))
    decoder = build_decoder(DecoderConfig(path=str(tmp_path / "llama")), vocab_size=64, dtype=torch.bfloat16)
    loaded = decoder.state_dict()
    assert {p.dtype for p in decoder.parameters()} == {torch.bfloat16}
    assert all(torch.equal(loaded[k], v.bfloat16()) for k, v in reference.state_dict().items())
    # Computed, not saved: built right (an empty buffer here would be garbage, not an error).
    assert torch.equal(decoder.model.rotary_emb.inv_freq, reference.model.rotary_emb.inv_freq)


def test_hf_decoder_folder_with_a_missing_weight_names_it(tmp_path):
    reference = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64))
    state = {k: v for k, v in reference.state_dict().items() if "q_proj" not in k}
    reference.config.save_pretrained(tmp_path / "llama")
    write_file(state, str(tmp_path / "llama" / "model.safetensors"))
    with pytest.raises(CheckpointFormatError, match=r"1 missing \['model\.layers\.0\.self_attn\.q_proj\.weight'\]"):
        build_decoder(DecoderConfig(path=str(tmp_path / "llama")), vocab_size=64)


def test_fsdp_end_of_training_saves_the_gathered_state_without_a_second_model(monkeypatch):
    """Rank 0 gets Lightning's gathered state ("model." prefixed); LoRA is merged into it."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=32))
    add_lora(model, LoraConfig(enabled=True, targets=["q_proj"]))
    torch.nn.init.normal_(model.model.layers[0].self_attn.q_proj.lora_b.weight)
    gathered = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}

    strategy = ShardedFSDPStrategy.__new__(ShardedFSDPStrategy)  # only its type and the gather are used
    monkeypatch.setattr(ShardedFSDPStrategy, "full_module_state_dict", lambda self: gathered)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a second model was built")

    monkeypatch.setattr(build_module, "build_model", no_rebuild)
    monkeypatch.setattr(run_module, "build_model", no_rebuild)
    trainer = type("Trainer", (), {"strategy": strategy, "is_global_zero": True})()
    with run_module._whole_weights(trainer, model) as state:
        expected = merged_state_dict(model)
        assert state.keys() == expected.keys() and all(torch.equal(state[k], v) for k, v in expected.items())
