"""A model whose video frames go through EVA ViT-g saves a folder that loads from itself alone."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from gptground.config import ModelConfig, load_recipe
from gptground.config.errors import RecipeError
from gptground.model.build import build_model, load_model
from gptground.model.folder import ARCHITECTURE_FILE, save_model_folder
from modalities.eva_vit import EvaViT, EvaViTShape
from modalities.image import ImageConfig
from modalities.video import VideoConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_model_folder import DECODER, logits  # noqa: E402

TINY_STAGE1 = Path(__file__).resolve().parents[3] / "recipes" / "tiny" / "stage1.yaml"
# One head of EVA's 88 channels: a LAVIS-layout file's head count is width // 88.
EVA = EvaViTShape(image_size=32, patch_size=8, width=88, depth=3, num_heads=1, mlp_width=128)


def write_eva_file(path: Path) -> Path:
    """A LAVIS-layout EVA tower (3 blocks, of which the recipe runs 2) with random weights."""
    torch.manual_seed(5)
    tower = EvaViT(EVA)
    state = {k: torch.randn_like(v) * 0.1 + (1.0 if "norm" in k and k.endswith("weight") else 0.0)
             for k, v in tower.state_dict().items()}
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path


def eva_model_config(eva_file: str) -> ModelConfig:
    return ModelConfig(decoder=DECODER, modalities={
        "image": ImageConfig(encoder="tiny", image_size=32),
        "video": VideoConfig(num_frames=2, image_size=32, frame_encoder_type="eva_vit_g", frame_encoder=eva_file,
                             frame_feature_layer=2, frame_qformer="tiny", num_queries=2, adapter_hidden_size=32,
                             adapter_num_heads=2, adapter_intermediate_size=64, adapter_dropout=0.0),
    })


def test_eva_folder_loads_with_the_tower_checkpoint_gone(tmp_path, monkeypatch):
    eva_file = write_eva_file(tmp_path / "checkpoints" / "eva_vit_g.pth")
    config = eva_model_config(str(eva_file))
    torch.manual_seed(0)
    model, tokenizer = build_model(config)
    expected = logits(model, tokenizer)
    folder = Path(save_model_folder(model, tokenizer, config, str(tmp_path / "run" / "model")))
    shutil.rmtree(tmp_path / "checkpoints")
    monkeypatch.chdir(tmp_path)

    record = json.loads((folder / ARCHITECTURE_FILE).read_text())
    assert record["video"]["frame_encoder_type"] == "eva_vit_g" and record["video"]["frame_encoder"]["depth"] == 2
    loaded, tokenizer2, cfg = load_model(str(folder))
    assert cfg.modalities["video"].frame_encoder_type == "eva_vit_g"
    assert isinstance(loaded.modalities["video"].encoder.eva, EvaViT)
    assert "modalities.video.encoder.eva.blocks.1.attn.q_bias" in loaded.state_dict()
    assert torch.equal(logits(loaded, tokenizer2), expected)


def test_eva_folder_loads_into_bf16(tmp_path):
    eva_file = write_eva_file(tmp_path / "checkpoints" / "eva_vit_g.pth")
    config = eva_model_config(str(eva_file))
    torch.manual_seed(0)
    model, tokenizer = build_model(config)
    folder = save_model_folder(model, tokenizer, config, str(tmp_path / "model"))
    loaded, tokenizer2, _ = load_model(folder, torch.bfloat16)
    assert {p.dtype for p in loaded.modalities["video"].parameters()} == {torch.bfloat16}
    assert torch.isfinite(logits(loaded, tokenizer2)).all()


def test_a_recipe_override_selects_eva_and_a_bad_value_names_the_key():
    recipe = load_recipe(str(TINY_STAGE1), ["model.modalities.video.frame_encoder_type=eva_vit_g"])
    video = recipe.model.modalities["video"]
    assert (video.frame_encoder_type, video.frame_feature_layer) == ("eva_vit_g", None)
    with pytest.raises(RecipeError, match=r"model\.modalities\.video\.frame_encoder_type"):
        load_recipe(str(TINY_STAGE1), ["model.modalities.video.frame_encoder_type=eva"])
