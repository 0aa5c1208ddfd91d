import argparse
import json
import subprocess
import sys

import pytest

import scale_gpu
from decoder_shapes import write_tokenizer_folder


def test_the_7b_recipe_has_vicuna_shape_one_image_modality_and_checkpointing(tmp_path):
    write_tokenizer_folder(tmp_path, 32000)
    recipe = scale_gpu.build_recipe("7b", "2", "fsdp", "gpu", "bf16-mixed", str(tmp_path))
    tiny = recipe.model.decoder.tiny
    assert (tiny.hidden_size, tiny.num_layers, tiny.num_heads, tiny.intermediate_size) == (4096, 32, 32, 11008)
    assert recipe.model.decoder.gradient_checkpointing and recipe.model.trainable.decoder
    assert list(recipe.model.modalities) == ["image"]
    image = recipe.model.modalities["image"]
    assert (image.image_size, image.tiny.patch_size, image.tiny.hidden_size, image.tiny.num_layers) == (336, 14, 1024, 24)
    assert (recipe.trainer.strategy, recipe.trainer.precision) == ("fsdp", "bf16-mixed")
    assert not scale_gpu.build_recipe("7b", "1", "fsdp", "gpu", "bf16-mixed", str(tmp_path)).model.trainable.decoder


def test_absent_package_placeholder_imports_but_refuses_use():
    module = scale_gpu._AbsentModule("imagebind")
    helpers = module.models.helpers  # module-level `from imagebind.models import helpers` works
    assert not hasattr(module, "__file__")
    with pytest.raises(ImportError, match="`imagebind` is not installed"):
        helpers.SelectElement(index=0)


def test_a_case_runs_through_our_lightning_module_on_cpu(tmp_path):
    args = argparse.Namespace(shape="tiny", stage="2", strategy="auto", accelerator="cpu", precision="32-true",
                              batch=2, seq=40, steps=1, warmup=1)
    row = scale_gpu.run_case(args)
    assert row["status"] == "ok" and row["steps_timed"] == 1 and row["tokens_per_s"] > 0
    assert row["trainable_params"] > row["decoder_params"] * 0.9  # stage 2: the decoder trains


def test_ratios_are_against_the_baseline_case_of_each_stage():
    rows = [{"stage": "1", "status": "ok", "tokens_per_s": 50.0, "mfu_vs_989": 0.2},
            {"stage": "2", "status": "ok", "tokens_per_s": 30.0, "mfu_vs_989": 0.3},
            {"stage": "2", "status": "skipped"}]
    baseline = {"vicuna7b_frozen_sdpa": {"tokens_per_s": 100.0, "mfu_vs_989": 0.4},
                "llama1b_full_sdpa": {"tokens_per_s": 60.0, "mfu_vs_989": 0.6}}
    scale_gpu.add_ratios(rows, baseline)
    assert [r.get("tokens_per_s_ratio") for r in rows] == [0.5, 0.5, None]
    assert [r.get("mfu_ratio") for r in rows] == [0.5, 0.5, None]


@pytest.mark.slow
def test_launcher_writes_a_row_per_case_and_says_why_one_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(scale_gpu.importlib.util, "find_spec", lambda name: None)  # no deepspeed here
    assert scale_gpu.skipped_reason("deepspeed_stage_2") == "deepspeed is not installed here"
    monkeypatch.undo()
    done = subprocess.run([sys.executable, str(scale_gpu.ROOT / "benchmarks" / "scale_gpu.py"), "--shape", "tiny",
                           "--accelerator", "cpu", "--strategy", "auto", "--precision", "32-true", "--batch", "2",
                           "--seq", "40", "--steps", "1", "--warmup", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "scale_gpu.json").read_text())["rows"]
    assert [(r["stage"], r["status"]) for r in rows] == [("1", "ok"), ("2", "ok")]


def test_a_failed_case_reports_its_exception_not_the_shutdown_warning_after_it():
    stderr = (
        "Traceback (most recent call last):\n"
        "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 24.69 GiB.\n"
        "[rank0]:[W1204 ProcessGroupNCCL.cpp:1575] Warning: WARNING: destroy_process_group() was not called\n"
    )
    assert scale_gpu.failure_reason(stderr) == "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 24.69 GiB."
    assert scale_gpu.failure_reason("just one line\n") == "just one line"
