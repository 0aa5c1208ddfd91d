"""FeatureStore: cached frozen-encoder features give the same tokens as encoding the file."""

import os

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


def _all_readable(store, images):
    return all(store.get("image", p)[0].ndim >= 1 and store.get("image", p)[1].size for p in images)


def test_a_torn_pair_of_an_older_store_is_rebuilt_saying_so(tmp_path, image_modality, images, caplog):
    """Fault 4 of issue 17: features of 3 images beside metadata of 2 (a kill between the
    two writes of older versions) made every later run die with a bare KeyError."""
    import json

    from safetensors.torch import save_file

    store = FeatureStore(str(tmp_path / "cache"), {"image": image_modality})
    store.build({"image": images})
    path, legacy = store._files("image")
    features = {k: v for k, v in store._features["image"].items()}
    save_file(features, path)  # the older layout: features only ...
    meta = {k: [list(m.size), m.duration] for k, m in list(store._meta["image"].items())[:2]}
    with open(legacy, "w") as f:  # ... and the metadata of two of them
        json.dump(meta, f)

    later = FeatureStore(str(tmp_path / "cache"), {"image": image_modality})
    with caplog.at_level("WARNING", logger="gptground.data.features"):
        assert later.build({"image": images}) == {"image": 3}
    assert any("torn" in r.getMessage() and "rebuilding" in r.getMessage() for r in caplog.records)
    assert _all_readable(later, images)
    assert not (tmp_path / "cache" / legacy).exists()
    assert _all_readable(FeatureStore(str(tmp_path / "cache"), {"image": image_modality}).load(), images)


def test_a_consistent_older_store_is_still_read(tmp_path, image_modality, images):
    import json

    from safetensors.torch import save_file

    store = FeatureStore(str(tmp_path / "cache"), {"image": image_modality})
    store.build({"image": images})
    path, legacy = store._files("image")
    save_file(dict(store._features["image"]), path)
    with open(legacy, "w") as f:
        json.dump({k: [list(m.size), m.duration] for k, m in store._meta["image"].items()}, f)
    assert FeatureStore(str(tmp_path / "cache"), {"image": image_modality}).build({"image": images}) == {"image": 0}


def test_a_save_killed_midway_keeps_the_previous_store(tmp_path, image_modality, images, monkeypatch):
    cache = str(tmp_path / "cache")
    FeatureStore(cache, {"image": image_modality}).build({"image": images[:2]})

    def killed(src, dst):
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr("gptground.data.features.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        FeatureStore(cache, {"image": image_modality}).build({"image": images})
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"image-{encoder_fingerprint(image_modality)}.safetensors"]
    previous = FeatureStore(cache, {"image": image_modality}).load()
    assert _all_readable(previous, images[:2]) and not previous.has("image", images[2])
    assert FeatureStore(cache, {"image": image_modality}).build({"image": images}) == {"image": 1}


def test_an_unreadable_store_file_is_rebuilt(tmp_path, image_modality, images, caplog):
    store = FeatureStore(str(tmp_path / "cache"), {"image": image_modality})
    store.build({"image": images})
    path, _ = store._files("image")
    with open(path, "r+b") as f:
        f.truncate(40)
    with caplog.at_level("WARNING", logger="gptground.data.features"):
        assert FeatureStore(str(tmp_path / "cache"), {"image": image_modality}).build({"image": images}) == {"image": 3}
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_a_build_removes_the_temporary_files_of_killed_saves_only(tmp_path, image_modality, images):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # an id no process holds any more
    cache = tmp_path / "cache"
    cache.mkdir()
    store_name = f"image-{encoder_fingerprint(image_modality)}.safetensors"
    dead = cache / f"{store_name}.tmp-{child.pid}"
    live = cache / f"{store_name}.tmp-{os.getppid()}"
    other = cache / "notes.safetensors.tmp-1"
    for path in (dead, live, other):
        path.write_bytes(b"half a store")
    FeatureStore(str(cache), {"image": image_modality}).build({"image": images})
    assert not dead.exists() and live.exists() and other.exists()
