"""Checkpoint loading: locating, safe reading, strict fitting, LAVIS and HF BLIP-2, CLIP folders."""

import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
)

from modalities import CheckpointNotFoundError, build_modality
from modalities.checkpoints import (
    load_state_dict_file,
    load_strict,
    map_lavis_blip2_keys,
    resolve_pretrained,
)
from modalities.errors import CheckpointFormatError
from modalities.qformer import build_blip2_qformer

KEY = "model.modalities.video.frame_qformer"
HIDDEN, ENC, INTER, QUERIES, LAYERS = 64, 48, 96, 4, 4  # tiny BLIP-2: 1 head of 64, ViT width 48


# --- a LAVIS BLIP-2 checkpoint, named exactly as LAVIS names it --------------------------------
def lavis_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny ``Blip2Qformer`` state dict in LAVIS's layout, text branch and heads included."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape):
        return torch.randn(*shape, generator=g)

    bert = "Qformer.bert"
    s = {
        "query_tokens": t(1, QUERIES, HIDDEN),
        "ln_vision.weight": t(ENC), "ln_vision.bias": t(ENC),
        "visual_encoder.patch_embed.proj.weight": t(ENC, 3, 8, 8),
        f"{bert}.embeddings.word_embeddings.weight": t(30, HIDDEN),
        f"{bert}.embeddings.position_embeddings.weight": t(16, HIDDEN),
        f"{bert}.embeddings.position_ids": torch.arange(16)[None],
        f"{bert}.embeddings.LayerNorm.weight": t(HIDDEN), f"{bert}.embeddings.LayerNorm.bias": t(HIDDEN),
        "Qformer.cls.predictions.bias": t(30),
        "vision_proj.weight": t(8, HIDDEN), "text_proj.weight": t(8, HIDDEN), "itm_head.weight": t(2, HIDDEN),
        "temp": torch.tensor(0.07),
    }
    for i in range(LAYERS):
        layer = f"{bert}.encoder.layer.{i}"
        blocks = ["attention"] + (["crossattention"] if i % 2 == 0 else [])  # cross_attention_freq=2
        for block in blocks:
            width = ENC if block == "crossattention" else HIDDEN
            s[f"{layer}.{block}.self.query.weight"] = t(HIDDEN, HIDDEN)
            s[f"{layer}.{block}.self.query.bias"] = t(HIDDEN)
            for kv in ("key", "value"):
                s[f"{layer}.{block}.self.{kv}.weight"] = t(HIDDEN, width)
                s[f"{layer}.{block}.self.{kv}.bias"] = t(HIDDEN)
            s[f"{layer}.{block}.output.dense.weight"] = t(HIDDEN, HIDDEN)
            s[f"{layer}.{block}.output.dense.bias"] = t(HIDDEN)
            s[f"{layer}.{block}.output.LayerNorm.weight"] = t(HIDDEN)
            s[f"{layer}.{block}.output.LayerNorm.bias"] = t(HIDDEN)
        for branch in ("", "_query"):  # text feed-forward (unused) and query feed-forward
            s[f"{layer}.intermediate{branch}.dense.weight"] = t(INTER, HIDDEN)
            s[f"{layer}.intermediate{branch}.dense.bias"] = t(INTER)
            s[f"{layer}.output{branch}.dense.weight"] = t(HIDDEN, INTER)
            s[f"{layer}.output{branch}.dense.bias"] = t(HIDDEN)
            s[f"{layer}.output{branch}.LayerNorm.weight"] = t(HIDDEN)
            s[f"{layer}.output{branch}.LayerNorm.bias"] = t(HIDDEN)
    return s


@pytest.fixture(scope="module")
def lavis_pth(tmp_path_factory) -> tuple[Path, dict]:
    state = lavis_state()
    path = tmp_path_factory.mktemp("lavis") / "blip2_pretrained_tiny.pth"
    torch.save({"model": state}, path)  # LAVIS wraps its weights in {"model": ...}
    return path, state


def test_lavis_pth_loads_with_every_weight_in_place(lavis_pth):
    path, lavis = lavis_pth
    model = build_blip2_qformer(str(path), KEY, tiny=None)
    qf = model.qformer
    assert (model.config.num_layers, model.config.cross_attention_frequency) == (LAYERS, 2)
    assert (model.config.num_queries, model.config.encoder_hidden_size, model.config.num_heads) == (QUERIES, ENC, 1)
    pairs = {
        "query_tokens": model.query_tokens,
        "ln_vision.weight": model.vision_norm.weight,
        "Qformer.bert.embeddings.LayerNorm.bias": qf.layernorm.bias,
        "Qformer.bert.encoder.layer.0.attention.self.query.weight": qf.encoder.layer[0].attention.attention.query.weight,
        "Qformer.bert.encoder.layer.2.crossattention.self.key.weight":
            qf.encoder.layer[2].crossattention.attention.key.weight,
        "Qformer.bert.encoder.layer.2.crossattention.output.LayerNorm.weight":
            qf.encoder.layer[2].crossattention.output.LayerNorm.weight,
        "Qformer.bert.encoder.layer.3.intermediate_query.dense.weight": qf.encoder.layer[3].intermediate_query.dense.weight,
        "Qformer.bert.encoder.layer.1.output_query.LayerNorm.bias": qf.encoder.layer[1].output_query.LayerNorm.bias,
        "Qformer.bert.encoder.layer.1.attention.output.dense.weight": qf.encoder.layer[1].attention.output.dense.weight,
    }
    for lavis_name, param in pairs.items():
        assert torch.equal(lavis[lavis_name], param), lavis_name
    assert not hasattr(qf.encoder.layer[1], "crossattention")
    assert model(torch.randn(2, 5, ENC)).shape == (2, QUERIES, HIDDEN)


def test_lavis_safetensors_loads_the_same(lavis_pth, tmp_path):
    path, lavis = lavis_pth
    save_file(lavis, tmp_path / "blip2.safetensors")
    from_pth = build_blip2_qformer(str(path), KEY, tiny=None)
    from_st = build_blip2_qformer(str(tmp_path / "blip2.safetensors"), KEY, tiny=None)
    for (name, a), b in zip(from_pth.state_dict().items(), from_st.state_dict().values()):
        assert torch.equal(a, b), name


def test_unknown_lavis_keys_are_listed():
    state = lavis_state()
    state["Qformer.bert.encoder.layer.0.attention.self.rotary.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointFormatError, match=r"1 keys are not in LAVIS.*self\.rotary\.weight"):
        map_lavis_blip2_keys(state, "x.pth", KEY)


def test_missing_lavis_weights_are_listed(tmp_path):
    state = lavis_state()
    del state["Qformer.bert.encoder.layer.1.output_query.dense.bias"]
    torch.save(state, tmp_path / "holed.pth")
    with pytest.raises(CheckpointFormatError, match=r"1 missing.*layer\.1\.output_query\.dense\.bias"):
        build_blip2_qformer(str(tmp_path / "holed.pth"), KEY, tiny=None)


def test_video_modality_loads_a_lavis_qformer(lavis_pth):
    path, lavis = lavis_pth
    video = build_modality(
        "video",
        {"num_frames": 2, "image_size": 32, "frame_encoder": "tiny", "frame_qformer": str(path),
             "tiny_encoder": {"hidden_size": ENC, "num_heads": 2}, "num_queries": 3,
             "adapter_hidden_size": 32, "adapter_num_heads": 2, "adapter_intermediate_size": 64},
        d_model=16,
    )
    assert torch.equal(video.encoder.qformer.query_tokens, lavis["query_tokens"])
    assert video.encode(torch.randn(1, 2, 3, 32, 32)).shape == (1, 2, QUERIES, HIDDEN)


def test_qformer_that_reads_another_encoder_width_is_refused(lavis_pth):
    path, _ = lavis_pth
    with pytest.raises(CheckpointFormatError, match="48-d.*32-d"):
        build_modality("video", {"image_size": 32, "frame_encoder": "tiny", "frame_qformer": str(path)}, d_model=16)


# --- a transformers BLIP-2 folder ----------------------------------------------------------------
def test_hf_blip2_folder_loads_qformer_queries_and_vision_norm(tmp_path):
    config = Blip2Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "image_size": 32, "patch_size": 8},
        qformer_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                            "encoder_hidden_size": 32},
        text_config={"model_type": "opt", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "ffn_dim": 32,
                         "vocab_size": 100, "word_embed_proj_dim": 16, "max_position_embeddings": 32},
        num_query_tokens=4,
    )
    reference = Blip2ForConditionalGeneration(config)
    reference.save_pretrained(tmp_path / "blip2")
    model = build_blip2_qformer(str(tmp_path / "blip2"), KEY, tiny=None)
    assert torch.equal(model.query_tokens, reference.query_tokens)
    assert torch.equal(model.vision_norm.weight, reference.vision_model.post_layernorm.weight)
    for name, value in reference.qformer.state_dict().items():
        assert torch.equal(model.qformer.state_dict()[name], value), name


# --- CLIP folders ---------------------------------------------------------------------------------
TINY_CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "image_size": 32, "patch_size": 8}


def test_clip_vision_folder_loads_into_the_image_modality(tmp_path):
    reference = CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP))
    reference.save_pretrained(tmp_path / "clip")
    image = build_modality("image", {"encoder": str(tmp_path / "clip"), "image_size": 32}, d_model=8)
    loaded = image.encoder.model
    assert torch.equal(loaded.embeddings.patch_embedding.weight, reference.embeddings.patch_embedding.weight)
    assert torch.equal(loaded.encoder.layers[0].mlp.fc1.weight, reference.encoder.layers[0].mlp.fc1.weight)
    assert len(loaded.encoder.layers) == 1  # layer -2 of 2: the last layer is dropped


def test_full_clip_folder_gives_its_vision_half(tmp_path):
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 99}
    reference = CLIPModel(CLIPConfig(vision_config=TINY_CLIP, text_config=text))
    reference.save_pretrained(tmp_path / "clip_full")
    image = build_modality("image", {"encoder": str(tmp_path / "clip_full"), "image_size": 32}, d_model=8)
    assert torch.equal(
        image.encoder.model.encoder.layers[0].self_attn.q_proj.weight,
        reference.vision_model.encoder.layers[0].self_attn.q_proj.weight,
    )


def test_clip_at_another_size_is_refused_naming_the_key(tmp_path):
    CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP)).save_pretrained(tmp_path / "clip")
    with pytest.raises(CheckpointFormatError, match=r"`model\.modalities\.image\.encoder`.*takes 32 px.*asks for 64"):
        build_modality("image", {"encoder": str(tmp_path / "clip"), "image_size": 64}, d_model=8)


# --- locating ------------------------------------------------------------------------------------
def test_existing_paths_resolve_to_themselves(tmp_path):
    assert resolve_pretrained(str(tmp_path), KEY) == str(tmp_path)


def test_missing_path_names_path_and_key(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as caught:
        resolve_pretrained(str(tmp_path / "gone.pth"), KEY)
    assert "gone.pth" in str(caught.value) and KEY in str(caught.value)
    assert caught.value.location.endswith("gone.pth") and caught.value.recipe_key == KEY


def test_hub_id_offline_fails_at_once():
    start = time.perf_counter()
    with pytest.raises(CheckpointNotFoundError, match="HF_HUB_OFFLINE"):
        resolve_pretrained("Salesforce/blip2-opt-2.7b", KEY)
    assert time.perf_counter() - start < 2.0


def test_unreachable_hub_fails_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.perf_counter()
    with pytest.raises(CheckpointNotFoundError, match="cannot be reached"):
        resolve_pretrained("someone/some-model", KEY)
    assert time.perf_counter() - start < 5.0


# --- safe reading --------------------------------------------------------------------------------
class _Exploit:
    """Pickling this would run Path.touch(marker) on load if pickles were executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": {"w": torch.zeros(1)}, "evil": _Exploit(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointFormatError, match="weights_only"):
        load_state_dict_file(str(tmp_path / "evil.pth"), KEY)
    assert not marker.exists()


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict"])
def test_wrapped_and_plain_state_dicts_read_the_same(tmp_path, wrapper):
    state = {"a.weight": torch.arange(3.0), "b": torch.ones(2, 2)}
    torch.save(state if wrapper is None else {wrapper: state, "epoch": 3}, tmp_path / "w.pth")
    loaded = load_state_dict_file(str(tmp_path / "w.pth"), KEY)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_unknown_weight_file_type_is_refused(tmp_path):
    (tmp_path / "weights.npz").write_bytes(b"zip")
    with pytest.raises(CheckpointFormatError, match="unknown weights file type"):
        load_state_dict_file(str(tmp_path / "weights.npz"), KEY)


def test_load_strict_lists_missing_unexpected_and_misshaped():
    module = nn.Linear(3, 2)
    state = {"weight": torch.zeros(2, 4), "extra": torch.zeros(1)}
    with pytest.raises(CheckpointFormatError) as caught:
        load_strict(module, state, "ckpt.pth", KEY)
    message = str(caught.value)
    assert "1 missing: ['bias']" in message and "1 unexpected: ['extra']" in message
    assert "weight (2, 4) vs (2, 3)" in message and KEY in message


# --- a hub cache that holds only part of a repo -----------------------------------------------------
def _fake_hub_snapshot(cache: Path, repo_id: str, files: dict[str, str]) -> Path:
    """The layout huggingface_hub caches a repo in: refs/main names the snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_snapshot_with_only_tokenizer_files_is_not_taken_for_the_model(hub_cache):
    # What loading the tokenizer first from the decoder's repo id leaves behind.
    _fake_hub_snapshot(hub_cache, "lmsys/vicuna-7b-v1.5", {"config.json": "{}", "tokenizer.model": "x"})
    with pytest.raises(CheckpointNotFoundError) as caught:
        resolve_pretrained("lmsys/vicuna-7b-v1.5", KEY)
    message = str(caught.value)
    assert "weights" in message and "hf download lmsys/vicuna-7b-v1.5" in message and KEY in message


def test_snapshot_missing_a_shard_names_it(hub_cache):
    index = '{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}'
    _fake_hub_snapshot(
        hub_cache, "owner/sharded",
        {"config.json": "{}", "model.safetensors.index.json": index, "model-00001-of-00002.safetensors": "x"},
    )
    with pytest.raises(CheckpointNotFoundError, match=r"lacks model-00002-of-00002\.safetensors"):
        resolve_pretrained("owner/sharded", KEY)


def test_incomplete_snapshot_goes_on_to_the_hub_when_online(hub_cache, monkeypatch):
    import modalities.checkpoints as checkpoints

    _fake_hub_snapshot(hub_cache, "owner/partial", {"tokenizer.json": "{}"})
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(checkpoints, "_reachable", lambda url, timeout_s=3.0: True)
    assert resolve_pretrained("owner/partial", KEY) == "owner/partial"  # from_pretrained fetches the rest


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_complete_snapshot_resolves_to_its_folder(hub_cache, weights):
    snapshot = _fake_hub_snapshot(hub_cache, "owner/whole", {"config.json": "{}", weights: "x"})
    assert resolve_pretrained("owner/whole", KEY) == str(snapshot)
