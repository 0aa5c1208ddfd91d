"""Tokenizer loading and the shipped tiny tokenizer."""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from gptground.tokenizer import (
    BUILTIN_DIR,
    TOKENIZER_KEY,
    TokenizerNotFoundError,
    load_tokenizer,
    write_tiny_tokenizer,
)


@pytest.fixture(scope="module")
def tiny():
    return load_tokenizer("builtin:tiny")


def test_builtin_has_llama_like_special_tokens_and_about_2000_tokens(tiny):
    assert isinstance(tiny, PreTrainedTokenizerFast)
    assert 1500 <= len(tiny) <= 2000
    assert tiny.convert_ids_to_tokens([0, 1, 2, 3]) == ["<unk>", "<s>", "</s>", "<pad>"]
    assert (tiny.bos_token, tiny.eos_token, tiny.pad_token, tiny.padding_side) == ("<s>", "</s>", "<pad>", "right")
    assert tiny("where is it").input_ids[0] == tiny.bos_token_id


def test_shipped_files_are_small():
    sizes = {p.name: p.stat().st_size for p in BUILTIN_DIR.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json"} <= set(sizes)
    assert sum(sizes.values()) < 300_000


@pytest.mark.parametrize("text", ["0123456789", "x=2024", "[0.123, 0.456]", "t 10.75 s"])
def test_digits_are_split_one_per_token(tiny, text):
    ids = tiny.encode(text, add_special_tokens=False)
    pieces = [tiny.decode([i]) for i in ids]
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits == [c for c in text if c.isdigit()]


@pytest.mark.parametrize(
    "text",
    [
        "[0.123, 0.456]",
        "{0.09,0.15}",
        "{0.09, 0.15}",
        "He is at [0.123, 0.456, 0.789, 0.900][0.1, 0.2, 0.3, 0.4].",
        "### Human: <image>\nWhere?\n### Assistant:",
        "  two  spaces , odd ,spacing\t\ttabs",
    ],
)
def test_grounding_text_round_trips_exactly(tiny, text):
    assert tiny.decode(tiny.encode(text, add_special_tokens=False)) == text


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=40))
def test_any_text_encodes_without_unk_and_round_trips(tiny, text):
    ids = tiny.encode(text, add_special_tokens=False)
    assert tiny.unk_token_id not in ids
    assert tiny.decode(ids) == text


def test_grounding_words_are_single_tokens(tiny):
    for word in (" red", " where", " Assistant", " box"):
        assert len(tiny.encode(word, add_special_tokens=False)) == 1, word


def test_training_is_deterministic_and_reproduces_the_shipped_files(tmp_path):
    files = write_tiny_tokenizer(tmp_path)
    assert files == ["tokenizer.json", "tokenizer_config.json"]
    for name in files:
        assert (tmp_path / name).read_bytes() == (BUILTIN_DIR / name).read_bytes(), name


def test_a_local_folder_loads(tmp_path, tiny):
    tiny.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.encode("where is the dog") == tiny.encode("where is the dog")


def test_a_folder_tokenizer_without_pad_pads_with_unk(tmp_path):
    tok = Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "hi": 2}, unk_token="<unk>"))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>").save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.pad_token == "<unk>" and loaded.pad_token_id == 0


def test_folder_without_tokenizer_files_is_not_found(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TokenizerNotFoundError, match="neither tokenizer.json nor tokenizer.model"):
        load_tokenizer(str(tmp_path))


def test_sentencepiece_only_folder_says_which_package_it_needs(tmp_path, monkeypatch):
    (tmp_path / "tokenizer.model").write_bytes(b"spm")  # what Vicuna's release ships
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if sentencepiece were absent
    with pytest.raises(ImportError, match="pip install sentencepiece"):
        load_tokenizer(str(tmp_path))


def test_missing_folder_names_the_path_and_the_recipe_key(tmp_path):
    missing = str(tmp_path / "vicuna-7b")
    with pytest.raises(TokenizerNotFoundError, match="vicuna-7b.*model.tokenizer") as info:
        load_tokenizer(missing)
    assert info.value.recipe_key == TOKENIZER_KEY and info.value.location == missing


def test_uncached_hub_id_offline_fails_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(TokenizerNotFoundError, match="lmsys/vicuna-7b-v1.5.*model.tokenizer.*offline"):
        load_tokenizer("lmsys/vicuna-7b-v1.5")


def test_unknown_builtin_lists_the_known_ones():
    with pytest.raises(TokenizerNotFoundError, match="builtin:tiny"):
        load_tokenizer("builtin:large")
