"""`model.preprocess`: validated, handed to every modality, saved in model folders, reloaded."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gptground.api import Grounder
from gptground.config import ModelConfig, RecipeError, load_recipe
from gptground.model.build import build_model, load_model
from gptground.model.folder import CONFIG_FILE, save_model_folder
from modalities.audio import AudioConfig
from modalities.image import ImageConfig
from modalities.video import VideoConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modalities"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "model"))
from media_factory import make_video  # noqa: E402
from test_model_folder import DECODER  # noqa: E402

TINY_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "stage2.yaml"


def tiny_modalities() -> dict:
    """Tiny configs that do not state a pipeline (``preprocess`` None): they take the model's."""
    return {
        "image": ImageConfig(encoder="tiny", image_size=32),
        "video": VideoConfig(num_frames=2, image_size=32, frame_encoder="tiny", frame_qformer="tiny", num_queries=2,
                             adapter_hidden_size=32, adapter_num_heads=2, adapter_intermediate_size=64),
        "audio": AudioConfig.tiny(num_windows=2),
    }


def recipe(tmp_path: Path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"extends: {TINY_RECIPE}\n{text}")
    return str(path)


def test_recipe_hands_the_setting_to_every_modality(tmp_path):
    # The tiny recipe places audio windows end to end ("span"); GroundingGPT's are ImageBind's.
    text = "model:\n  preprocess: groundinggpt\n  modalities:\n    audio:\n      window_placement: imagebind\n"
    cfg = load_recipe(recipe(tmp_path, text)).model
    assert cfg.preprocess == "groundinggpt"
    assert cfg.modalities and {m.preprocess for m in cfg.modalities.values()} == {"groundinggpt"}
    default = load_recipe(str(TINY_RECIPE)).model
    assert default.preprocess == "default" and {m.preprocess for m in default.modalities.values()} == {"default"}


def test_unknown_value_names_the_key_and_the_choices(tmp_path):
    choices = r"must be one of \['default', 'groundinggpt'\], got 'llava'"
    with pytest.raises(RecipeError, match=rf"`model.preprocess` {choices}"):
        load_recipe(recipe(tmp_path, "model:\n  preprocess: llava\n"))


def test_a_modality_that_disagrees_is_an_error(tmp_path):
    text = "model:\n  preprocess: groundinggpt\n  modalities:\n    image:\n      preprocess: default\n"
    text += "    audio:\n      window_placement: imagebind\n"
    with pytest.raises(RecipeError, match=r"`model.modalities.image.preprocess` is 'default' but `model.preprocess`"):
        load_recipe(recipe(tmp_path, text))
    with pytest.raises(RecipeError, match=r"`model.modalities.image.preprocess` is 'groundinggpt'"):
        ModelConfig(preprocess="default", modalities={"image": ImageConfig(encoder="tiny", preprocess="groundinggpt")})


def test_typed_configs_given_in_code_receive_it():
    cfg = ModelConfig(decoder=DECODER, preprocess="groundinggpt", modalities=tiny_modalities())
    assert {m.preprocess for m in cfg.modalities.values()} == {"groundinggpt"}


@pytest.fixture(scope="module")
def groundinggpt_folder(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig(decoder=DECODER, preprocess="groundinggpt", modalities=tiny_modalities())
    model, tokenizer = build_model(cfg)
    return save_model_folder(model, tokenizer, cfg, str(tmp_path_factory.mktemp("run") / "model"))


def test_saved_folder_records_it_and_load_model_honours_it(groundinggpt_folder, tmp_path):
    saved = OmegaConf.load(Path(groundinggpt_folder) / CONFIG_FILE)
    assert saved.model.preprocess == "groundinggpt"
    model, _, cfg = load_model(groundinggpt_folder)
    assert cfg.preprocess == "groundinggpt"
    assert {m.config.preprocess for m in model.modalities.values()} == {"groundinggpt"}
    clip = make_video(tmp_path / "clip.mp4", num_frames=6, size=(64, 48))
    frames = model.modalities["video"].load(clip).data  # 64 x 48 squashed to 32 x 32 by the decoder
    assert frames.shape == (2, 3, 32, 32)


def test_grounder_reads_media_the_folder_way(groundinggpt_folder):
    grounder = Grounder.load(groundinggpt_folder, device="cpu", dtype=torch.float32)
    assert {m.config.preprocess for m in grounder.model.modalities.values()} == {"groundinggpt"}


def test_folders_without_the_key_load_as_default(groundinggpt_folder, tmp_path):
    folder = shutil.copytree(groundinggpt_folder, tmp_path / "model")
    path = folder / CONFIG_FILE
    saved = OmegaConf.load(path)
    del saved.model["preprocess"]
    for section in saved.model.modalities.values():
        del section["preprocess"]
    OmegaConf.save(saved, path)
    model, _, cfg = load_model(str(folder))
    assert cfg.preprocess == "default"
    assert {m.config.preprocess for m in model.modalities.values()} == {"default"}
