"""The tiny stages 1 -> 2 -> 3 in a row from the command line, each starting from the
model folder of the one before (`model.init_from`)."""

from __future__ import annotations

import re

import lightning as L
import torch
from safetensors.torch import load_file
from training_fixtures import RECIPES, tiny_overrides, tiny_recipe

from gptground.cli import main
from gptground.model.build import build_model, load_model

ADAPTER = re.compile(r"modalities\.\w+\.adapter\.")


def _run(stage: int, world, out, *extra: str):
    code = main(["run", str(RECIPES / f"stage{stage}.yaml"), *tiny_overrides(world, out), "trainer.max_steps=2", *extra])
    assert code == 0
    model = out / f"tiny-stage{stage}" / "version_0" / "model"
    assert {p.name for p in model.iterdir()} >= {"config.yaml", "model.safetensors", "tokenizer", "decoder_config.json"}
    return model


def _weights(model_folder, pattern: re.Pattern) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(model_folder / "model.safetensors").items() if pattern.match(k)}


def test_tiny_stages_chain_through_model_folders(world, tmp_path):
    stage1 = _run(1, world, tmp_path)
    # Stage 2 freezes the adapters here, so its saved adapters are exactly where it started.
    stage2 = _run(2, world, tmp_path, f"model.init_from={stage1}", "model.trainable.adapters=false")
    stage3 = _run(3, world, tmp_path, "model.init_from=tiny-stage2")  # a run name: its newest model
    assert f"init_from: {stage2}" in (stage3.parent / "recipe.yaml").read_text()

    adapters1, adapters2 = _weights(stage1, ADAPTER), _weights(stage2, ADAPTER)
    assert adapters1.keys() == adapters2.keys() and adapters1
    assert all(torch.equal(adapters1[k], adapters2[k]) for k in adapters1)  # loaded, bit for bit

    L.seed_everything(0)  # what a re-initialisation with the recipe's seed would give
    fresh, _ = build_model(tiny_recipe(1, world, tmp_path).model)
    fresh_adapters = {k: v for k, v in fresh.state_dict().items() if ADAPTER.match(k)}
    assert any(not torch.equal(fresh_adapters[k], adapters1[k]) for k in adapters1)

    decoder = re.compile(r"decoder\.model\.layers\.")
    d1, d2, d3 = _weights(stage1, decoder), _weights(stage2, decoder), _weights(stage3, decoder)
    assert all(not torch.equal(d1[k], d2[k]) for k in d1 if k.endswith("q_proj.weight"))  # stage 2 trained
    assert any(not torch.equal(d2[k], d3[k]) for k in d2)

    model, tokenizer, cfg = load_model(str(stage3))
    assert cfg.init_from == str(stage3) and set(model.modalities) == {"image", "video", "audio"}
    assert len(tokenizer) == model.decoder.get_input_embeddings().weight.shape[0]
