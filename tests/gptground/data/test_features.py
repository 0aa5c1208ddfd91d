"""FeatureStore: cached frozen-encoder features give the same tokens as encoding the file."""

import numpy as np
import pytest
import torch
from PIL import Image

from gptground.collate import collate
from gptground.data.features import FeatureStore, encoder_fingerprint
from gptground.processor import Processor
from gptground.tokenizer import load_tokenizer
from modalities import build_modality


@pytest.fixture
def image_modality():
    torch.manual_seed(0)
    return build_modality("image", {"encoder": "tiny", "image_size": 32}, d_model=16)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(40, 30), (32, 32), (20, 50)]):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def record(i, path):
    return {
        "id": f"r{i}",
        "image": path,
        "conversations": [{"from": "human", "value": "<image>\nWhere?"}, {"from": "gpt", "value": "[0.1, 0.2, 0.3, 0.4]"}],
    }


def test_cached_features_match_encoding(tmp_path, image_modality, images):
    store = FeatureStore(str(tmp_path / "cache"), {"image": image_modality})
    assert store.build({"image": images}) == {"image": 3}
    assert store.build({"image": images}) == {"image": 0}  # nothing new to encode
    reloaded = FeatureStore(str(tmp_path / "cache"), {"image": image_modality}).load()
    tok = load_tokenizer("builtin:tiny")
    plain = Processor(tok, {"image": image_modality}, max_length=128)
    cached = Processor(tok, {"image": image_modality}, max_length=128, features=reloaded)
    raw = collate([plain(record(i, p)) for i, p in enumerate(images)], tok.pad_token_id)
    fast = collate([cached(record(i, p)) for i, p in enumerate(images)], tok.pad_token_id)
    assert fast["encoded"] == ["image"] and raw["encoded"] == []
    assert [m.size for m in fast["media_meta"]["image"]] == [(40, 30), (32, 32), (20, 50)]
    with torch.no_grad():
        expected = image_modality(raw["media"]["image"])
        got = image_modality.adapt(fast["media"]["image"])
    torch.testing.assert_close(got, expected)


def test_fingerprint_changes_with_encoder_weights(image_modality):
    before = encoder_fingerprint(image_modality)
    with torch.no_grad():
        next(image_modality.encoder.parameters()).add_(1.0)
    assert encoder_fingerprint(image_modality) != before


def test_unreadable_files_are_left_out(tmp_path, image_modality, images):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    store = FeatureStore(str(tmp_path / "cache"), {"image": image_modality})
    assert store.build({"image": images + [str(bad)]}) == {"image": len(images)}
    assert store.has("image", images[0]) and not store.has("image", str(bad))
    assert [path for path, _ in store.left_out["image"]] == [str(bad)]
