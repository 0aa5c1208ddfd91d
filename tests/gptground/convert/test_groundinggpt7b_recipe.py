"""recipes/groundinggpt7b.yaml holds what the converter derives from the full-size release."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from transformers import CLIPVisionConfig

from gptground.config import load_recipe
from gptground.convert.groundinggpt import RELEASE_TEMPLATE, converted_config
from gptground.convert.lego_layout import LegoConfig
from gptground.convert.shards import TensorInfo

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "groundinggpt7b.yaml"
PATHS = {"encoder", "frame_encoder", "frame_qformer"}  # where weights come from, not their shape


def release_layout() -> dict[str, TensorInfo]:
    """The shapes of the released checkpoint's keys that fix the modalities (LEGO.py at 7B)."""
    shapes: dict[str, tuple[int, ...]] = {
        "model.visual_encoder.cls_token": (1, 1, 1408),
        "model.visual_encoder.patch_embed.proj.weight": (1408, 3, 14, 14),
        "model.visual_encoder.pos_embed": (1, 257, 1408),  # 16 x 16 patches at 224 px + CLS
        "model.visual_encoder.blocks.0.mlp.fc1.weight": (6144, 1408),
        "model.video_query_tokens": (1, 64, 768),
        "model.audio_query_tokens": (1, 8, 768),
        "model.audio_position_embedding.weight": (8, 1024),
    }
    shapes.update({f"model.visual_encoder.blocks.{i}.norm1.weight": (1408,) for i in range(39)})
    for name, width in (("video_Qformer", 768), ("audio_Qformer", 1024)):
        for i in range(2):
            layer = f"model.{name}.bert.encoder.layer.{i}"
            shapes[f"{layer}.attention.self.query.weight"] = (768, 768)
            shapes[f"{layer}.crossattention.self.key.weight"] = (768, width)
            shapes[f"{layer}.intermediate_query.dense.weight"] = (3072, 768)
    return {k: TensorInfo(v, torch.float16, "pytorch_model-00001-of-00002.bin") for k, v in shapes.items()}


def test_the_recipe_has_the_release_s_modalities_template_and_preprocessing(tmp_path):
    clip = tmp_path / "clip-vit-large-patch14-336"
    CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=1024, intermediate_size=4096,
                     num_hidden_layers=24, num_attention_heads=16).save_pretrained(clip)
    lego = LegoConfig(raw={"hidden_size": 4096}, mm_vision_tower=str(clip), mm_vision_select_layer=-2,
                      max_frame=64, video_token_len=64, sound_token_len=8)
    derived = converted_config(lego, release_layout(), str(clip), "zwli/GroundingGPT")
    recipe = load_recipe(str(RECIPE))
    assert recipe.model.preprocess == derived.preprocess == "groundinggpt"
    assert recipe.data.template == RELEASE_TEMPLATE and recipe.data.grounding_format == "groundinggpt"
    for name, config in derived.modalities.items():
        ours, theirs = dataclasses.asdict(recipe.model.modalities[name]), dataclasses.asdict(config)
        assert {k: v for k, v in ours.items() if k not in PATHS} == {k: v for k, v in theirs.items() if k not in PATHS}, name
