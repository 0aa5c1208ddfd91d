import json

import pytest
import torch
from safetensors import safe_open

from decoder_shapes import SHAPES, parse_shape, write_decoder_folder, write_tokenizer_folder
from gptground.config import DecoderConfig, ModelConfig
from gptground.model.build import build_model
from gptground.tokenizer import load_tokenizer
from modalities.image import ImageConfig


def test_named_shapes_have_the_issue_and_vicuna_parameter_counts():
    assert SHAPES["0.83b"].num_parameters() == 834_479_616  # 1.67 GB in bf16: the issue's 0.83B
    assert SHAPES["7b"].num_parameters() == 6_738_415_616  # Vicuna-7B v1.5


def test_parse_shape_reads_key_values_and_names_a_bad_item():
    shape = parse_shape("hidden=128,layers=3,heads=4,intermediate=344,vocab=4000")
    assert (shape.hidden_size, shape.num_layers, shape.vocab_size) == (128, 3, 4000)
    with pytest.raises(ValueError, match="'depth=3'"):
        parse_shape("hidden=128,depth=3")
    with pytest.raises(ValueError, match="missing"):
        parse_shape("hidden=128,layers=3")


def test_tokenizer_folder_has_the_decoder_vocab_and_encodes_as_the_shipped_one(tmp_path):
    write_tokenizer_folder(tmp_path, 2500)
    padded, shipped = load_tokenizer(str(tmp_path)), load_tokenizer("builtin:tiny")
    assert len(padded) == 2500
    text = "Where is the red circle? [0.125, 0.5, 0.75, 1.0] {0.10,0.25}"
    assert padded(text).input_ids == shipped(text).input_ids
    assert padded.decode(padded(text).input_ids, skip_special_tokens=True) == text


def test_decoder_folder_is_bf16_and_its_vocab_covers_the_tokenizer(tmp_path):
    shape = SHAPES["tiny"]
    weight_bytes = write_decoder_folder(tmp_path / "decoder", shape)
    write_tokenizer_folder(tmp_path / "tokenizer", shape.vocab_size)
    assert weight_bytes == 2 * shape.num_parameters()
    with safe_open(str(tmp_path / "decoder" / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    assert json.loads((tmp_path / "decoder" / "config.json").read_text())["vocab_size"] == shape.vocab_size
    cfg = ModelConfig(decoder=DecoderConfig(path=str(tmp_path / "decoder")), tokenizer=str(tmp_path / "tokenizer"),
                      modalities={"image": ImageConfig(encoder="tiny", image_size=32)})
    model, tokenizer = build_model(cfg)
    rows = model.decoder.get_input_embeddings().weight
    # The image's three tokens grow the vocab; no old row is dropped.
    assert rows.shape[0] == len(tokenizer) == shape.vocab_size + 3
    assert torch.isfinite(rows).all()
