"""Model folders load from themselves alone, in the dtype asked for, from one file or shards."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import CLIPVisionConfig, CLIPVisionModel

from gptground.config import DecoderConfig, ModelConfig, TinyDecoderConfig
from gptground.model.build import build_model, load_model, weights_dtype
from gptground.model.folder import ARCHITECTURE_FILE, save_model_folder
from gptground.model.safetensors_io import INDEX_FILE, SINGLE_FILE, WeightsFormatError
from modalities.audio import AudioConfig
from modalities.image import ImageConfig
from modalities.imagebind_audio import ENCODER_SIZES, ImageBindAudioEncoder
from modalities.video import VideoConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "modalities"))
from test_checkpoints import lavis_state  # noqa: E402  (a tiny BLIP-2 Q-Former in LAVIS's key layout)

CLIP_WIDTH = 48  # the LAVIS Q-Former of lavis_state reads 48-d image features
DECODER = DecoderConfig(tiny=TinyDecoderConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64))


def write_checkpoints(root: Path) -> dict[str, str]:
    """One checkpoint of every source kind, as users have them: HF CLIP folder, LAVIS .pth,
    ImageBind .pth (audio keys in ImageBind's layout plus a vision key that is ignored)."""
    torch.manual_seed(3)
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=CLIP_WIDTH, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=2, image_size=32, patch_size=8))
    clip.save_pretrained(root / "clip")
    torch.save({"model": lavis_state()}, root / "blip2_pretrained_tiny.pth")
    imagebind = ImageBindAudioEncoder(ENCODER_SIZES["tiny"]).state_dict()
    imagebind["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 2)
    torch.save(imagebind, root / "imagebind_huge.pth")
    return {"clip": str(root / "clip"), "lavis": str(root / "blip2_pretrained_tiny.pth"),
            "imagebind": str(root / "imagebind_huge.pth")}


def model_config(paths: dict[str, str]) -> ModelConfig:
    return ModelConfig(
        decoder=DECODER,
        modalities={
            "image": ImageConfig(encoder=paths["clip"], image_size=32),
            "video": VideoConfig(num_frames=2, image_size=32, frame_encoder=paths["clip"],
                                 frame_qformer=paths["lavis"], num_queries=2, adapter_hidden_size=32,
                                 adapter_num_heads=2, adapter_intermediate_size=64, adapter_dropout=0.0),
            "audio": AudioConfig.tiny(encoder=paths["imagebind"], num_windows=2, qformer_dropout=0.0),
        },
    )


def tiny_model_config() -> ModelConfig:
    return ModelConfig(decoder=DECODER, modalities={
        "image": ImageConfig(encoder="tiny", image_size=32),
        "video": VideoConfig(num_frames=2, image_size=32, frame_encoder="tiny", frame_qformer="tiny", num_queries=2,
                             adapter_hidden_size=32, adapter_num_heads=2, adapter_intermediate_size=64),
        "audio": AudioConfig.tiny(num_windows=2),
    })


def logits(model, tokenizer) -> torch.Tensor:
    """Logits of one sequence holding an image, a video and a sound (fixed random inputs)."""
    g = torch.Generator().manual_seed(0)
    ids, media = [1], {}
    shapes = {"image": (3, 32, 32), "video": (2, 3, 32, 32), "audio": (2, 1, 128, 204)}
    for name, modality in model.modalities.items():
        start, patch, end = tokenizer.convert_tokens_to_ids(list(modality.special_tokens()))
        ids += [start] + [patch] * modality.num_tokens + [end]
        media[name] = torch.randn(1, *shapes[name], generator=g)
    ids = torch.tensor([ids + [5, 6]])
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        return model.eval()(ids, torch.ones_like(ids), {k: v.to(dtype) for k, v in media.items()},
                            {k: torch.tensor([0]) for k in media}).logits


@pytest.fixture
def imagebind_shrunk(monkeypatch):
    """ImageBind-"huge" at the tiny dims, so a checkpoint path builds a small audio branch."""
    monkeypatch.setitem(ENCODER_SIZES, "huge", ENCODER_SIZES["tiny"])


def test_folder_loads_with_every_checkpoint_gone_from_another_directory(tmp_path, monkeypatch, imagebind_shrunk):
    paths = write_checkpoints(tmp_path / "checkpoints")
    torch.manual_seed(0)
    model, tokenizer = build_model(model_config(paths))
    expected = logits(model, tokenizer)
    folder = save_model_folder(model, tokenizer, model_config(paths), str(tmp_path / "run" / "model"))
    shutil.rmtree(tmp_path / "checkpoints")  # the CLIP folder, the LAVIS and ImageBind files
    moved = shutil.move(folder, tmp_path / "elsewhere" / "model")
    monkeypatch.undo()  # the loaded audio branch is sized by the folder's record, not by ENCODER_SIZES
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")

    loaded, tokenizer2, cfg = load_model(str(moved))
    assert torch.equal(logits(loaded, tokenizer2), expected)
    assert cfg.modalities["image"].encoder == paths["clip"]  # recorded, never read again


def test_tiny_encoders_reload_from_their_records(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_model_config())
    folder = save_model_folder(model, tokenizer, tiny_model_config(), str(tmp_path / "model"))
    assert (Path(folder) / ARCHITECTURE_FILE).is_file()
    loaded, tokenizer2, _ = load_model(folder)
    assert torch.equal(logits(loaded, tokenizer2), logits(model, tokenizer))


def test_folders_written_before_records_existed_still_load(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_model_config())
    folder = save_model_folder(model, tokenizer, tiny_model_config(), str(tmp_path / "model"))
    (Path(folder) / ARCHITECTURE_FILE).unlink()  # encoders rebuilt from the config, then loaded
    loaded, tokenizer2, _ = load_model(folder)
    assert torch.equal(logits(loaded, tokenizer2), logits(model, tokenizer))


def test_next_stage_starts_from_the_folder_with_its_checkpoints_gone(tmp_path, imagebind_shrunk):
    paths = write_checkpoints(tmp_path / "checkpoints")
    torch.manual_seed(0)
    model, tokenizer = build_model(model_config(paths))
    folder = save_model_folder(model, tokenizer, model_config(paths), str(tmp_path / "stage1" / "model"))
    shutil.rmtree(tmp_path / "checkpoints")
    stage2 = model_config(paths)
    stage2.init_from = folder
    following, tokenizer2 = build_model(stage2)
    assert torch.equal(logits(following, tokenizer2), logits(model, tokenizer))


def test_big_folders_are_sharded_and_load_the_same(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_model_config())
    folder = Path(save_model_folder(model, tokenizer, tiny_model_config(), str(tmp_path / "model"),
                                    max_shard_bytes=200_000))
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) > 2 and (folder / INDEX_FILE).is_file() and not (folder / SINGLE_FILE).exists()
    with safe_open(str(shards[0]), framework="pt") as f:  # readable by safetensors itself
        name = next(iter(f.keys()))
        assert torch.equal(f.get_tensor(name), model.state_dict()[name])
    loaded, tokenizer2, _ = load_model(str(folder))
    assert torch.equal(logits(loaded, tokenizer2), logits(model, tokenizer))


def test_folder_loads_straight_into_the_dtype_asked_for(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_model_config())
    folder = save_model_folder(model, tokenizer, tiny_model_config(), str(tmp_path / "model"))
    loaded, _, _ = load_model(folder, torch.bfloat16)
    state = loaded.state_dict()
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert all(torch.equal(state[k], v.to(torch.bfloat16)) for k, v in model.state_dict().items() if v.is_floating_point())


def test_folder_that_does_not_fit_the_recipe_names_the_weights(tmp_path):
    torch.manual_seed(0)
    model, tokenizer = build_model(tiny_model_config())
    folder = save_model_folder(model, tokenizer, tiny_model_config(), str(tmp_path / "model"))
    other = tiny_model_config()
    other.modalities["image"].adapter_hidden_size = 16
    other.init_from = folder
    with pytest.raises(WeightsFormatError, match=r"model\.safetensors: entry 'modalities\.image\.adapter\.0\.\w+' has shape"):
        build_model(other)


@pytest.mark.parametrize("precision, dtype", [("bf16-true", torch.bfloat16), ("16-true", torch.float16),
                                              ("bf16-mixed", torch.float32), ("32-true", torch.float32),
                                              ("auto", torch.float32)])
def test_weights_dtype_follows_the_trainer_precision(precision, dtype):
    assert weights_dtype(precision) == dtype
