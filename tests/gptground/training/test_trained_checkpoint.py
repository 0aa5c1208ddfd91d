"""Checkpoints of a stage with a frozen decoder hold only what trains, resume bit for bit,
and refuse to resume onto frozen weights other than those they were trained with."""

from __future__ import annotations

import os
import shutil

import lightning as L
import pytest
import torch
from training_fixtures import tiny_recipe

from gptground.model.build import build_model
from gptground.model.trainable import apply_trainable
from gptground.training.frozen_fingerprint import FrozenWeightsChangedError, tensor_fingerprint
from gptground.training.module import MODEL_PREFIX
from gptground.training.run import train
from gptground.training.trained_state import trained_state_names

STEPS, RESUME_AT = 4, 2
COMMON = ("trainer.checkpoint.every_n_train_steps=1", "model.modalities.video.adapter_dropout=0.2",
          "data.group_by_source=false")


def _frozen_part(name: str) -> bool:
    """Whether ``name`` is in a decoder layer or a modality's encoder (frozen in stage 1)."""
    return name.startswith("decoder.model.layers.") or name.split(".")[2:3] == ["encoder"]


class KeepCheckpointAt(L.Callback):
    """Copies last.ckpt as it is after step ``step`` (before step ``step + 1`` runs)."""

    def __init__(self, step: int, to: str):
        self.step, self.to = step, to

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            shutil.copyfile(os.path.join(trainer.log_dir, "checkpoints", "last.ckpt"), self.to)


class FinalState(L.Callback):
    """The model's whole state dict (every parameter and buffer) when training ends."""

    state: dict[str, torch.Tensor] = {}

    def on_train_end(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}


def test_trained_names_are_what_requires_grad_and_the_adapters_statistics(world, tmp_path):
    recipe = tiny_recipe(1, world, tmp_path)
    model, _ = build_model(recipe.model)
    apply_trainable(model, recipe.model.trainable)
    names = trained_state_names(model)

    assert {n for n, p in model.named_parameters() if p.requires_grad} <= names
    assert {n for n in names if "standardize" in n} == {
        f"modalities.audio.adapter.standardize.{b}" for b in ("count", "mean", "var")}
    frozen = [n for n in model.state_dict() if n not in names]
    assert any(n.startswith("decoder.model.layers.") for n in frozen)
    assert not any(_frozen_part(n) for n in names)
    # The frozen audio encoder's buffer (a logit scale) stays out: its part does not train.
    assert "modalities.audio.encoder.modality_postprocessors.audio.1.log_logit_scale" in frozen


@pytest.fixture(scope="module")
def uninterrupted(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    keep, final = KeepCheckpointAt(RESUME_AT, str(out / "step2.ckpt")), FinalState()
    recipe = tiny_recipe(1, world, out / "runs", *COMMON, f"trainer.max_steps={STEPS}")
    run_dir = train(recipe, callbacks=[keep, final])
    return out / "step2.ckpt", final.state, run_dir


def test_the_checkpoint_holds_only_the_trained_state(uninterrupted):
    ckpt_path, final, run_dir = uninterrupted
    ckpt = torch.load(ckpt_path, weights_only=False)
    saved = {k.removeprefix(MODEL_PREFIX) for k in ckpt["state_dict"]}
    assert saved == set(ckpt["gptground_frozen"]["trained"])
    assert not any(_frozen_part(k) for k in saved)
    assert "decoder.lm_head.weight" not in saved
    # Size: what trains and its two Adam moments, plus metadata; no frozen byte. (At this
    # size the adapters outweigh the frozen decoder; at 7B the frozen bytes are 97 %.)
    trained_bytes = sum(final[k].numel() * final[k].element_size() for k in saved)
    frozen_bytes = sum(v.numel() * v.element_size() for k, v in final.items() if k not in saved)
    assert frozen_bytes > 800_000
    assert os.path.getsize(ckpt_path) < 3 * trained_bytes + 256 * 1024  # metadata: ~180 KB
    # One checkpoint per save: no "top 1" copy of last.ckpt when no metric is monitored.
    assert os.listdir(os.path.join(run_dir, "checkpoints")) == ["last.ckpt"]


def test_resuming_from_step_k_repeats_the_uninterrupted_run_bit_for_bit(world, tmp_path, uninterrupted):
    ckpt_path, expected, _ = uninterrupted
    final = FinalState()
    recipe = tiny_recipe(1, world, tmp_path / "runs", *COMMON, f"trainer.max_steps={STEPS}")
    recipe.trainer.resume_from = str(ckpt_path)
    train(recipe, callbacks=[final])

    assert final.state.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(final.state[k], expected[k])]
    assert different == []
    assert not torch.equal(expected["modalities.audio.adapter.standardize.count"], torch.tensor(0))


@pytest.mark.parametrize(
    ("override", "named"),
    [("model.decoder.tiny.intermediate_size=80", "`model.decoder.tiny.intermediate_size` '64' -> '80'"),
     ("run.seed=1", "same sources")],
    ids=["another-decoder-shape", "another-random-init"],
)
def test_resuming_onto_other_frozen_weights_is_refused(world, tmp_path, uninterrupted, override, named):
    ckpt_path, _, _ = uninterrupted
    recipe = tiny_recipe(1, world, tmp_path / "runs", *COMMON, f"trainer.max_steps={STEPS}", override)
    recipe.trainer.resume_from = str(ckpt_path)
    with pytest.raises(FrozenWeightsChangedError, match=r"decoder\.model\.layers\.0\.mlp") as e:
        train(recipe)
    assert named in str(e.value) and str(ckpt_path) in str(e.value)


def test_resuming_with_other_parts_trainable_is_refused(world, tmp_path, uninterrupted):
    ckpt_path, _, _ = uninterrupted
    recipe = tiny_recipe(1, world, tmp_path / "runs", *COMMON, f"trainer.max_steps={STEPS}",
                         "model.trainable.decoder=true")
    recipe.trainer.resume_from = str(ckpt_path)
    with pytest.raises(FrozenWeightsChangedError, match=r"trained now, not then: \['decoder\.lm_head"):
        train(recipe)


def test_the_fingerprint_reads_the_bits_of_any_dtype():
    w = torch.randn(64, 33)
    assert tensor_fingerprint(w) == tensor_fingerprint(w.clone())
    changed = w.clone()
    changed[0, 0] += 1  # the first element is always in the sample
    assert tensor_fingerprint(changed) != tensor_fingerprint(w)
    assert tensor_fingerprint(w.to(torch.bfloat16)).startswith("(64, 33)|bfloat16|")
    assert tensor_fingerprint(w.reshape(33, 64)) != tensor_fingerprint(w)  # shape counts
    assert tensor_fingerprint(torch.empty(0)).startswith("(0,)|float32|")
