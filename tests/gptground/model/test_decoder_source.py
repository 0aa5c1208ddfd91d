"""Where the decoder's weights come from: an incomplete folder fails at once, naming what is missing."""

import pytest

from gptground.config import DecoderConfig
from gptground.model.decoder import DECODER_KEY, build_decoder
from modalities import CheckpointNotFoundError


def test_folder_without_weights_names_them_and_the_key(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(CheckpointNotFoundError) as caught:
        build_decoder(DecoderConfig(path=str(tmp_path)), vocab_size=32)
    assert "model.safetensors" in str(caught.value) and DECODER_KEY in str(caught.value)


def test_folder_without_config_names_it(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointNotFoundError, match="config.json"):
        build_decoder(DecoderConfig(path=str(tmp_path)), vocab_size=32)
