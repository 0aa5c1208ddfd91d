"""EVA ViT-g frame tower: parity with the published equations and with transformers' BLIP-2, in
LAVIS's and transformers' layouts; strict loading; the video modality on it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2VisionModel

from modalities import build_modality
from modalities.clip import TinyVisionShape
from modalities.errors import CheckpointFormatError
from modalities.eva_vit import EvaViT, EvaViTShape
from modalities.eva_vit_checkpoints import load_eva_vit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_eva import layer_norm, lavis_blip2_state, lavis_eva_state, reference_eva  # noqa: E402

KEY = "model.modalities.video.frame_encoder"
# Tiny EVA: 2 heads of EVA's 88 channels (a LAVIS file's head count is width // 88), 28 px
# frames in 14 px patches: a 2 x 2 grid + CLS = 5 tokens. 3 blocks, as BLIP-2 runs them.
WIDTH, HEADS, BLOCKS, SIZE, PATCH = 176, 2, 3, 28, 14
# A LAVIS file does not store the Q-Former's heads: BERT's are 64 wide, so one head of 64 here.
QUERIES, QF_WIDTH = 4, 64


def tiny_blip2_config() -> Blip2Config:
    return Blip2Config(
        vision_config={"hidden_size": WIDTH, "intermediate_size": 256, "num_hidden_layers": BLOCKS,
                       "num_attention_heads": HEADS, "image_size": SIZE, "patch_size": PATCH},
        qformer_config={"hidden_size": QF_WIDTH, "num_hidden_layers": 2, "num_attention_heads": 1,
                        "intermediate_size": 64, "encoder_hidden_size": WIDTH},
        text_config={"model_type": "opt", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "ffn_dim": 32, "vocab_size": 100, "word_embed_proj_dim": 16, "max_position_embeddings": 32},
        num_query_tokens=QUERIES,
    )


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int) -> None:
    """Every weight random and away from its init (LayerNorm gains near 1, the rest ~0.1; the
    key third of each fused qkv bias too, which attention must ignore)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=g)
        if "norm" in name and name.endswith("weight"):
            p.copy_(1.0 + 0.2 * noise)
        else:
            p.copy_(0.1 * noise)


@pytest.fixture(scope="module")
def blip2(tmp_path_factory):
    """A tiny transformers BLIP-2 with random weights, and its tower and Q-Former saved in every
    layout: a BLIP-2 folder, a Blip2VisionModel folder, LAVIS's eva_vit_g.pth (with a 4th block,
    as eva_vit_g.pth has a 40th that BLIP-2 drops) and LAVIS's blip2_pretrained_*.pth."""
    root = tmp_path_factory.mktemp("eva")
    model = Blip2ForConditionalGeneration(tiny_blip2_config()).eval()
    randomise(model, seed=0)
    model.save_pretrained(root / "blip2")
    vision = Blip2VisionModel(model.config.vision_config)
    vision.load_state_dict(model.vision_model.state_dict())
    vision.save_pretrained(root / "vision")
    eva = lavis_eva_state(model.vision_model.state_dict())
    extra = {k.replace(f"blocks.{BLOCKS - 1}.", f"blocks.{BLOCKS}."): torch.randn_like(v)
             for k, v in eva.items() if k.startswith(f"blocks.{BLOCKS - 1}.")}
    torch.save({**eva, **extra}, root / "eva_vit_g.pth")
    torch.save({"model": lavis_blip2_state(model.state_dict())}, root / "blip2_pretrained_tiny.pth")
    return {"model": model, "eva": eva, "root": root}


def pixels(n: int = 3, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --- the reference itself ----------------------------------------------------------------------
def test_reference_equals_transformers_blip2_vision_model(blip2):
    """The test's reference and LAVIS-layout weights agree with transformers' own forward,
    which adds post_layernorm (ln_vision) at the end."""
    model, x = blip2["model"], pixels()
    hf = model.vision_model(pixel_values=x).last_hidden_state
    ln = model.vision_model.post_layernorm
    ours = layer_norm(reference_eva(blip2["eva"], x, HEADS), ln.weight, ln.bias, ln.eps)
    assert ours.shape == (3, 1 + (SIZE // PATCH) ** 2, WIDTH)
    torch.testing.assert_close(ours.float(), hf, atol=1e-5, rtol=1e-5)


# --- the tower in each layout ------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["eva_vit_g.pth", "blip2", "vision"])
def test_tower_features_equal_the_reference(blip2, layout):
    tower = load_eva_vit(str(blip2["root"] / layout), KEY, TinyVisionShape(), SIZE, blocks=BLOCKS).eval()
    assert tower.shape == EvaViTShape(image_size=SIZE, patch_size=PATCH, width=WIDTH, depth=BLOCKS,
                                      num_heads=HEADS, mlp_width=256, norm_eps=1e-6)
    x = pixels()
    with torch.no_grad():
        torch.testing.assert_close(tower(x).double(), reference_eva(blip2["eva"], x, HEADS), atol=1e-5, rtol=1e-5)


def test_lavis_file_loads_without_renames(blip2):
    tower = load_eva_vit(str(blip2["root"] / "eva_vit_g.pth"), KEY, TinyVisionShape(), SIZE, blocks=BLOCKS)
    assert tower.state_dict().keys() == blip2["eva"].keys()
    for name, value in blip2["eva"].items():
        assert torch.equal(tower.state_dict()[name], value), name


def test_all_blocks_of_the_file_can_run(blip2):
    tower = load_eva_vit(str(blip2["root"] / "eva_vit_g.pth"), KEY, TinyVisionShape(), SIZE, blocks=BLOCKS + 1)
    assert len(tower.blocks) == BLOCKS + 1


def test_blip2_depth_is_the_default_and_more_blocks_than_the_file_has_are_refused(blip2):
    with pytest.raises(CheckpointFormatError, match=rf"holds {BLOCKS} EVA blocks, but 39 are to be run.*{KEY}|{KEY}.*holds {BLOCKS} EVA blocks, but 39"):
        load_eva_vit(str(blip2["root"] / "blip2"), KEY, TinyVisionShape(), SIZE)


def test_fp16_file_loads_into_fp32(blip2, tmp_path):
    half = {k: v.half() for k, v in blip2["eva"].items()}
    save_file(half, tmp_path / "eva_fp16.safetensors")
    tower = load_eva_vit(str(tmp_path / "eva_fp16.safetensors"), KEY, TinyVisionShape(), SIZE, blocks=BLOCKS)
    assert tower.pos_embed.dtype == torch.float32
    assert torch.equal(tower.cls_token, half["cls_token"].float())


# --- strictness ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.__setitem__("blocks.1.attn.qkv_weight", s.pop("blocks.1.attn.qkv.weight")),
         r"missing: \['blocks\.1\.attn\.qkv\.weight'\].*unexpected: \['blocks\.1\.attn\.qkv_weight'\]"),
        (lambda s: s.pop("blocks.2.attn.v_bias"), r"1 missing: \['blocks\.2\.attn\.v_bias'\]"),
        (lambda s: s.__setitem__("blocks.0.mlp.fc2.bias", torch.zeros(WIDTH + 1)),
         r"mis-shaped.*blocks\.0\.mlp\.fc2\.bias \(177,\) vs \(176,\)"),
        (lambda s: s.__setitem__("norm.weight", torch.ones(WIDTH)), r"unexpected: \['norm\.weight'\]"),
    ],
    ids=["renamed", "removed", "misshaped", "unknown"],
)
def test_lavis_misfits_are_refused_naming_the_key(blip2, tmp_path, edit, message):
    state = dict(blip2["eva"])
    edit(state)
    torch.save(state, tmp_path / "eva.pth")
    with pytest.raises(CheckpointFormatError, match=message) as caught:
        load_eva_vit(str(tmp_path / "eva.pth"), KEY, TinyVisionShape(), SIZE, blocks=BLOCKS)
    assert KEY in str(caught.value) and "eva.pth" in str(caught.value)


def test_hf_unknown_key_is_refused_naming_it(blip2, tmp_path):
    folder = tmp_path / "vision"
    Blip2VisionModel.from_pretrained(blip2["root"] / "vision").save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    weights["encoder.layers.0.self_attn.rotary.weight"] = torch.zeros(2)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(CheckpointFormatError, match=r"Blip2VisionModel layout: \['encoder\.layers\.0\.self_attn\.rotary\.weight'\]"):
        load_eva_vit(str(folder), KEY, TinyVisionShape(), SIZE, blocks=BLOCKS)


def test_a_lavis_file_whose_width_hides_the_head_count_is_refused(tmp_path):
    state = EvaViT(EvaViTShape(image_size=16, patch_size=8, width=32, depth=1, num_heads=2, mlp_width=64)).state_dict()
    torch.save(state, tmp_path / "eva.pth")
    with pytest.raises(CheckpointFormatError, match="88"):
        load_eva_vit(str(tmp_path / "eva.pth"), KEY, TinyVisionShape(), 16, blocks=1)


def test_other_models_are_not_taken_for_an_eva_tower(tmp_path):
    torch.save({"visual.conv1.weight": torch.zeros(8, 3, 4, 4)}, tmp_path / "clip.pth")
    with pytest.raises(CheckpointFormatError, match=r"not an EVA ViT.*cls_token"):
        load_eva_vit(str(tmp_path / "clip.pth"), KEY, TinyVisionShape(), SIZE)


# --- position embedding at another grid ----------------------------------------------------------
def test_positions_are_interpolated_to_the_recipes_grid(blip2, tmp_path):
    state = dict(blip2["eva"])
    pos = torch.zeros(1, 5, WIDTH)
    pos[0, 0] = 7.0  # CLS row: kept as is
    pos[0, 1:, 0] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # channel 0 grows along columns only (2 x 2, row-major)
    state["pos_embed"] = pos
    torch.save(state, tmp_path / "eva.pth")
    tower = load_eva_vit(str(tmp_path / "eva.pth"), KEY, TinyVisionShape(), 2 * SIZE, blocks=BLOCKS)
    grid = tower.pos_embed.detach()[0, 1:, 0].reshape(4, 4)  # 56 px: a 4 x 4 grid
    assert tower.pos_embed.shape == (1, 17, WIDTH)
    assert torch.equal(tower.pos_embed[0, 0], pos[0, 0])
    torch.testing.assert_close(grid, grid[:1].expand(4, 4))  # every row alike: no row/column mix-up
    assert torch.all(grid[0, 1:] >= grid[0, :-1]) and grid[0, -1] > grid[0, 0]  # increasing along columns


# --- the whole frame encoder: EVA -> ln_vision -> BLIP-2 Q-Former --------------------------------
def video_config(frame_encoder: str, frame_qformer: str, **overrides) -> dict:
    return {"num_frames": 2, "image_size": SIZE, "frame_encoder_type": "eva_vit_g", "frame_encoder": frame_encoder,
            "frame_qformer": frame_qformer, "frame_feature_layer": BLOCKS, "num_queries": 4,
            "adapter_hidden_size": 32, "adapter_num_heads": 2, "adapter_intermediate_size": 64, "adapter_dropout": 0.0,
            **overrides}


@pytest.mark.parametrize(
    "encoder, qformer, ln_eps",
    # LAVIS's ln_vision is nn.LayerNorm's default eps 1e-5 (blip2.py init_vision_encoder);
    # transformers' post_layernorm uses the vision config's layer_norm_eps, 1e-6.
    [("eva_vit_g.pth", "blip2_pretrained_tiny.pth", 1e-5), ("blip2", "blip2", 1e-6), ("vision", "blip2", 1e-6)],
)
def test_frame_features_equal_reference_eva_and_transformers_qformer(blip2, encoder, qformer, ln_eps):
    root, model = blip2["root"], blip2["model"]
    video = build_modality("video", video_config(str(root / encoder), str(root / qformer)), d_model=16)
    frames = pixels(4).reshape(2, 2, 3, SIZE, SIZE)  # (B, F, 3, S, S)
    features = video.encode(frames)
    ln = model.vision_model.post_layernorm
    image = layer_norm(reference_eva(blip2["eva"], frames.flatten(0, 1), HEADS), ln.weight, ln.bias, ln_eps).float()
    with torch.no_grad():
        queries = model.qformer(query_embeds=model.query_tokens.expand(4, -1, -1), encoder_hidden_states=image)
    assert features.shape == (2, 2, QUERIES, QF_WIDTH)
    torch.testing.assert_close(features, queries.last_hidden_state.unflatten(0, (2, 2)), atol=1e-5, rtol=1e-5)


def test_hf_frame_encoder_equals_transformers_blip2_end_to_end(blip2):
    """Frame encoder from a BLIP-2 folder == transformers' own vision model + Q-Former."""
    root, model = blip2["root"], blip2["model"]
    video = build_modality("video", video_config(str(root / "blip2"), str(root / "blip2")), d_model=16)
    x = pixels(2)
    with torch.no_grad():
        image = model.vision_model(pixel_values=x).last_hidden_state  # includes ln_vision
        expected = model.qformer(query_embeds=model.query_tokens.expand(2, -1, -1), encoder_hidden_states=image)
    torch.testing.assert_close(video.encode(x[None])[0], expected.last_hidden_state, atol=1e-5, rtol=1e-5)


def test_frame_batches_do_not_change_the_features(blip2):
    root = blip2["root"]
    whole = build_modality("video", video_config(str(root / "blip2"), str(root / "blip2")), d_model=16)
    one_by_one = build_modality("video", video_config(str(root / "blip2"), str(root / "blip2"), frame_batch_size=1),
                                d_model=16)
    frames = pixels(4).reshape(2, 2, 3, SIZE, SIZE)
    torch.testing.assert_close(whole.encode(frames), one_by_one.encode(frames), atol=1e-6, rtol=1e-5)


# --- the video modality on a tiny EVA -------------------------------------------------------------
TINY_VIDEO = {"num_frames": 2, "image_size": 32, "frame_encoder_type": "eva_vit_g", "frame_encoder": "tiny",
              "frame_qformer": "tiny", "num_queries": 4, "adapter_hidden_size": 32, "adapter_num_heads": 2,
              "adapter_intermediate_size": 64}


def test_tiny_eva_video_encodes_and_adapts_in_bf16():
    video = build_modality("video", TINY_VIDEO, d_model=16)
    assert video.encoder.tower_name == "eva" and isinstance(video.encoder.eva, EvaViT)
    assert not any(k.startswith("encoder.clip.") for k in video.state_dict())
    frames = torch.randn(1, 2, 3, 32, 32)
    tokens = video.adapt(video.encode(frames))
    assert tokens.shape == (1, 4, 16)
    video.to(torch.bfloat16)
    features = video.encode(frames)  # fp32 pixels into a bf16 tower
    assert features.dtype == torch.bfloat16 and features.shape == (1, 2, 32, 32)


def test_tiny_eva_frames_differ_in_their_features():
    video = build_modality("video", TINY_VIDEO, d_model=16)
    features = video.encode(torch.randn(1, 2, 3, 32, 32))
    assert (features[0, 0] - features[0, 1]).abs().mean() > 1e-2 * features.abs().mean()


def test_eva_record_rebuilds_the_modules_without_the_checkpoint(blip2):
    root = blip2["root"]
    video = build_modality("video", video_config(str(root / "eva_vit_g.pth"), str(root / "blip2_pretrained_tiny.pth")),
                           d_model=16)
    record = video.architecture()
    assert record["frame_encoder_type"] == "eva_vit_g"
    assert record["frame_encoder"] == {"image_size": SIZE, "patch_size": PATCH, "width": WIDTH, "depth": BLOCKS,
                                       "num_heads": HEADS, "mlp_width": 256, "norm_eps": 1e-6}
    config = video_config("/gone/eva_vit_g.pth", "/gone/blip2.pth")
    rebuilt = build_modality("video", config, d_model=16, architecture=record)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in video.state_dict().items()}
    rebuilt.load_state_dict(video.state_dict())
    frames = pixels(2).reshape(1, 2, 3, SIZE, SIZE)
    torch.testing.assert_close(rebuilt.encode(frames), video.encode(frames))


def test_a_record_with_other_eva_blocks_is_refused_naming_the_key():
    record = build_modality("video", TINY_VIDEO, d_model=16).architecture()  # 2 blocks
    with pytest.raises(CheckpointFormatError, match=r"frame_feature_layer.*runs 2 blocks, the recipe asks for 1"):
        build_modality("video", {**TINY_VIDEO, "frame_feature_layer": 1}, d_model=16, architecture=record)


def test_a_record_of_the_other_tower_type_is_refused_naming_the_key():
    clip_record = build_modality("video", {**TINY_VIDEO, "frame_encoder_type": "clip"}, d_model=16).architecture()
    with pytest.raises(CheckpointFormatError, match=r"frame_encoder_type.*'clip'.*'eva_vit_g'"):
        build_modality("video", TINY_VIDEO, d_model=16, architecture=clip_record)
    older = {k: v for k, v in clip_record.items() if k != "frame_encoder_type"}  # folders before EVA: CLIP
    with pytest.raises(CheckpointFormatError, match="frame_encoder_type"):
        build_modality("video", TINY_VIDEO, d_model=16, architecture=older)


# --- config ----------------------------------------------------------------------------------------
def test_unknown_tower_type_names_the_recipe_key():
    with pytest.raises(ValueError, match=r"`model\.modalities\.video\.frame_encoder_type` must be one of \['clip', 'eva_vit_g'\]"):
        build_modality("video", {**TINY_VIDEO, "frame_encoder_type": "eva"}, d_model=16)


def test_eva_layer_counted_from_the_end_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"`model\.modalities\.video\.frame_feature_layer` is -2.*BLIP-2: 39"):
        build_modality("video", {**TINY_VIDEO, "frame_feature_layer": -2}, d_model=16)


def test_clip_keeps_its_second_to_last_layer_by_default():
    from modalities.video import VideoConfig

    assert VideoConfig(frame_encoder="tiny", frame_qformer="tiny").frame_feature_layer == -2
    assert VideoConfig(frame_encoder_type="eva_vit_g", frame_encoder="tiny", frame_qformer="tiny").frame_feature_layer is None


def test_qformer_for_another_tower_width_is_refused(blip2):
    with pytest.raises(CheckpointFormatError, match=r"176-d image features.*32-d.*blip2_pretrained_flant5xxl"):
        build_modality("video", {**TINY_VIDEO, "image_size": SIZE, "tiny_encoder": {"patch_size": PATCH},
                                 "frame_qformer": str(blip2["root"] / "blip2")}, d_model=16)


# --- the real EVA ViT-g/14, on the meta device (shapes only, no memory) --------------------------
def test_real_eva_vit_g_matches_transformers_blip2_vision_defaults_key_for_key():
    """EvaViTShape() is BLIP-2's tower: transformers' default Blip2VisionConfig (EVA ViT-g at
    224 px, 39 layers) maps onto it with every key and shape in place; 257 tokens of 1408."""
    from transformers import Blip2VisionConfig

    from modalities.eva_vit_checkpoints import _map_hf_keys

    with torch.device("meta"):
        ours = EvaViT(EvaViTShape())
        theirs = Blip2VisionModel(Blip2VisionConfig())
    mapped = _map_hf_keys(theirs.state_dict(), "hf", KEY)
    assert {k: v.shape for k, v in mapped.items()} == {k: v.shape for k, v in ours.state_dict().items()}
    assert ours.pos_embed.shape == (1, 257, 1408) and len(ours.blocks) == 39
    assert ours.blocks[0].attn.num_heads == 16 and ours.blocks[0].mlp.fc1.out_features == 6144
    assert 0.98e9 < sum(p.numel() for p in ours.parameters()) < 0.99e9  # EVA ViT-g without its 40th block
