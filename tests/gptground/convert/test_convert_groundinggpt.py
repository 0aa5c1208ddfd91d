"""`gptground convert groundinggpt` on tiny checkpoints in the released layout."""

from __future__ import annotations

import json
import os
import weakref

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lego_reference import audio_tokens, eva_vit, image_tokens, imagebind_audio, layer_norm, qformer, video_tokens
from PIL import Image
from released_checkpoint import RELEASED_TOKENS, reference_decoder, rewrite, write_released_checkpoint
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "modalities"))  # media_factory

from gptground.api import Grounder
from gptground.cli import main
from gptground.convert import shards
from gptground.convert.errors import ConversionError
from gptground.convert.groundinggpt import convert_groundinggpt
from gptground.convert.lego_layout import is_dropped, target_key
from gptground.model.build import load_model
from gptground.model.folder import read_folder_config


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    return write_released_checkpoint(tmp_path_factory.mktemp("release") / "GroundingGPT")


@pytest.fixture(scope="module")
def converted(released, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("converted") / "groundinggpt7b")
    assert main(["convert", "groundinggpt", released.folder, "--out", out, "--dtype", "fp32"]) == 0
    return out


@pytest.fixture(scope="module")
def loaded(converted):
    model, tokenizer, _ = load_model(converted)
    return model, tokenizer


def folder_weights(folder: str) -> dict[str, torch.Tensor]:
    with safe_open(os.path.join(folder, "model.safetensors"), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


# --- layout ------------------------------------------------------------------------------------
def test_the_full_layout_converts_with_nothing_left_over(released, converted):
    weights = folder_weights(converted)
    dropped = sorted(k for k in released.state if is_dropped(k))
    # what is dropped: ImageBind's other modalities, the Q-Formers' position_ids, old rotary buffers
    assert {k.split(".")[1] for k in dropped} == {"audio_encoder", "Qformer", "video_Qformer", "audio_Qformer", "layers"}
    assert all(".vision." in k or ".text." in k or ".depth." in k or ".thermal." in k or ".imu." in k
               for k in dropped if k.startswith("model.audio_encoder."))
    kept = {k: target_key(k) for k in released.state if k not in dropped}
    assert None not in kept.values()
    for source, target in kept.items():  # each released tensor lands whole, in fp32
        assert torch.equal(weights[target], released.state[source].float()), source
    # the folder holds exactly these, plus the CLIP tower read from mm_vision_tower
    clip = {k for k in weights if k.startswith("modalities.image.encoder.")}
    assert set(weights) == set(kept.values()) | clip and clip


def test_the_folder_records_encoders_template_and_format(converted):
    cfg = read_folder_config(converted)
    assert cfg.text.template == "groundinggpt_release" and cfg.text.grounding_format == "groundinggpt"
    assert cfg.model.preprocess == "groundinggpt"
    assert {m.preprocess for m in cfg.model.modalities.values()} == {"groundinggpt"}
    video = cfg.model.modalities.video
    assert (video.frame_encoder_type, video.num_frames, video.num_queries) == ("eva_vit_g", 4, 6)
    assert cfg.model.modalities.audio.num_queries == 8 and cfg.model.modalities.image.feature_layer == -2
    architecture = json.loads(open(os.path.join(converted, "architecture.json")).read())
    assert architecture["video"]["frame_encoder"]["width"] == 176 and architecture["audio"]["encoder"]["num_heads"] == 2


def mutated(released, change):
    state = dict(released.state)
    change(state)
    rewrite(released, state)


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda s: s.__setitem__("model.video_Qformer.bert.encoder.layer.1.attention.self.querry.weight",
                                 s.pop("model.video_Qformer.bert.encoder.layer.1.attention.self.query.weight")),
         "model.video_Qformer.bert.encoder.layer.1.attention.self.querry.weight"),
        (lambda s: s.pop("model.audio_llama_proj.bias"), "modalities.audio.adapter.projection.bias"),
        (lambda s: s.__setitem__("model.llama_proj.weight", torch.zeros(65, 128, dtype=torch.float16)),
         "model.llama_proj.weight"),
    ],
    ids=["renamed", "removed", "reshaped"],
)
def test_one_key_renamed_removed_or_reshaped_is_refused_naming_it_and_nothing_is_written(tmp_path, change, named):
    released = write_released_checkpoint(tmp_path / "release")
    mutated(released, change)
    with pytest.raises(ConversionError, match=named.replace(".", r"\.")):
        convert_groundinggpt(released.folder, str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["clip-tiny", "release"]  # no folder, no temporary left


def test_the_cli_refuses_with_one_line_naming_the_key(tmp_path, capsys):
    released = write_released_checkpoint(tmp_path / "release")
    mutated(released, lambda s: s.__setitem__("model.extra_head.weight", torch.zeros(2)))
    assert main(["convert", "groundinggpt", released.folder, "--out", str(tmp_path / "out")]) == 2
    assert "model.extra_head.weight" in capsys.readouterr().err


# --- token ids -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tokens_in_tokenizer", [False, True], ids=["added-at-load", "saved-in-tokenizer"])
def test_each_media_token_gets_the_id_of_its_released_rows(tmp_path, tokens_in_tokenizer):
    released = write_released_checkpoint(tmp_path / "release", tokens_in_tokenizer=tokens_in_tokenizer)
    out = convert_groundinggpt(released.folder, str(tmp_path / "out"), dtype=torch.float32)
    model, tokenizer, _ = load_model(out)
    embed = model.decoder.get_input_embeddings().weight
    head = model.decoder.get_output_embeddings().weight
    for token in RELEASED_TOKENS:
        row, new_id = released.token_rows[token], tokenizer.convert_tokens_to_ids(token)
        assert torch.equal(embed[new_id], released.state["model.embed_tokens.weight"][row].float()), token
        assert torch.equal(head[new_id], released.state["lm_head.weight"][row].float()), token
    assert model.patch_token_ids == {n: tokenizer.convert_tokens_to_ids(f"<{p}_patch>")
                                     for n, p in (("image", "im"), ("video", "vi"), ("audio", "so"))}


def test_a_tokenizer_whose_size_does_not_match_the_embedding_rows_is_refused(tmp_path):
    released = write_released_checkpoint(tmp_path / "release", tokens_in_tokenizer=True)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(released.folder)
    tokenizer.add_tokens(["<extra>"], special_tokens=True)
    tokenizer.save_pretrained(released.folder)
    with pytest.raises(ConversionError, match="rows"):
        convert_groundinggpt(released.folder, str(tmp_path / "out"))


# --- memory: one shard at a time -------------------------------------------------------------------
def test_each_shard_is_released_before_the_next_is_opened(tmp_path, monkeypatch):
    released = write_released_checkpoint(tmp_path / "release", shards=4)
    real_load, alive, loads = shards.torch.load, [], []

    def watched_load(path, **kwargs):
        assert kwargs.get("weights_only") is True and kwargs.get("mmap") is True
        assert all(ref() is None for ref in alive), f"a shard is still held when {os.path.basename(path)} opens"
        state = real_load(path, **kwargs)
        alive.append(weakref.ref(next(iter(state.values()))))
        loads.append(os.path.basename(path))
        return state

    monkeypatch.setattr(shards.torch, "load", watched_load)
    convert_groundinggpt(released.folder, str(tmp_path / "out"))
    assert len(loads) == 8 and len(set(loads)) == 4  # a layout pass and a copy pass, shard by shard


# --- each branch equals the reference forward ---------------------------------------------------------
def test_image_tokens_equal_the_reference_forward(released, loaded):
    model, _ = loaded
    pixels = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model.modalities["image"](pixels)
    torch.testing.assert_close(ours, image_tokens(released.state, released.clip_folder, pixels), atol=1e-5, rtol=1e-4)


def test_video_tokens_equal_the_reference_forward(released, loaded):
    model, _ = loaded
    frames = torch.randn(2, 4, 3, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        features, ours = model.modalities["video"].encode(frames), model.modalities["video"](frames)
    st = released.state
    frame_features = layer_norm(eva_vit(st, "model.visual_encoder", frames.flatten(0, 1)), st, "model.ln_vision", 1e-5)
    per_frame = qformer(st, "model.Qformer", st["model.query_tokens"].float().expand(8, -1, -1), frame_features)
    torch.testing.assert_close(features, per_frame.view(2, 4, 4, -1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours, video_tokens(st, frames), atol=1e-5, rtol=1e-4)


def test_audio_tokens_equal_the_reference_forward(released, loaded):
    model, _ = loaded
    fbanks = torch.randn(2, 3, 1, 128, 204, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        clips, ours = model.modalities["audio"].encode(fbanks), model.modalities["audio"](fbanks)
    reference_clips = imagebind_audio(released.state, "model.audio_encoder", fbanks.flatten(0, 1)).view(2, 3, -1)
    torch.testing.assert_close(clips, reference_clips, atol=1e-5, rtol=1e-4)  # L2-normalised x 20
    torch.testing.assert_close(ours, audio_tokens(released.state, fbanks), atol=1e-4, rtol=1e-4)


# --- the converted folder answers through Grounder and `gptground eval` ---------------------------------


# --- the converted folder answers through Grounder and `gptground eval` ---------------------------------
@pytest.fixture(scope="module")
def media(tmp_path_factory):
    import soundfile
    from media_factory import make_video

    folder = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    make_video(folder / "a.mp4", num_frames=12, size=(64, 48))
    soundfile.write(folder / "a.wav", 0.3 * np.sin(np.linspace(0, 2000, 16000 * 5)).astype(np.float32), 16000)
    return {"image": folder / "a.png", "video": folder / "a.mp4", "audio": folder / "a.wav"}


REFERENCE_BRANCH = {
    "image": lambda released, x: image_tokens(released.state, released.clip_folder, x),
    "video": lambda released, x: video_tokens(released.state, x),
    "audio": lambda released, x: audio_tokens(released.state, x),
}


@torch.no_grad()
def reference_answer(released, grounder, question: str, name: str, path, max_new_tokens: int) -> str:
    """Greedy decoding as LEGO.py runs it: the media tokens replace the patch positions of the
    prompt's embeddings, then transformers' LlamaForCausalLM with the released weights."""
    sample = grounder.processor.prompt(question, media={name: path})
    tokens = REFERENCE_BRANCH[name](released, sample.media[name].unsqueeze(0))[0]
    decoder = reference_decoder(released)
    ids = sample.input_ids.tolist()
    embeds = decoder.get_input_embeddings()(sample.input_ids).clone()
    patches = (sample.input_ids == grounder.model.patch_token_ids[name]).nonzero().flatten()
    assert len(patches) == len(tokens)
    embeds[patches] = tokens
    new = []
    tokenizer = grounder.processor.tokenizer
    for _ in range(max_new_tokens):
        step = decoder(inputs_embeds=embeds[None]).logits[0, -1].argmax().item()
        new.append(step)
        if step == tokenizer.eos_token_id:
            break
        embeds = torch.cat([embeds, decoder.get_input_embeddings().weight[step][None]])
    text = tokenizer.decode(new, skip_special_tokens=True)
    return text.split("###")[0].strip() if "###" in text else text.strip()


@pytest.mark.parametrize("name", ["image", "video", "audio"])
def test_grounder_answers_as_the_reference_model_does(released, converted, media, name):
    grounder = Grounder.load(converted, device="cpu", dtype=torch.float32, max_new_tokens=8)
    assert grounder.processor.template.name == "groundinggpt_release"
    question = {"image": "Where is the cat?", "video": "When does the door open?", "audio": "When does the dog bark?"}[name]
    reply = grounder.chat(question, **{name: str(media[name])})
    expected = reference_answer(released, grounder, question, name, str(media[name]), 8)
    assert reply.text.strip() == expected


def test_gptground_eval_scores_the_converted_folder(converted, media, tmp_path):
    records = [
        {"id": f"q{i}", "video": "a.mp4",
         "conversations": [{"from": "human", "value": f"<video>\nWhen does event {i} happen?"},
                           {"from": "gpt", "value": "{0.10,0.50}"}],
         "target": {"task": "video_tg", "spans": [[0.1, 0.6]], "duration": 1.2}}
        for i in range(2)
    ]
    data = tmp_path / "bench.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    code = main(["eval", converted, str(data), "--task", "video_tg", "--out", str(tmp_path / "out"),
                 "--roots", f"video={media['video'].parent}", "--accelerator", "cpu", "--max-new-tokens", "6"])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    lines = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert metrics["n"] == 2 and [line["id"] for line in lines] == ["q0", "q1"]
    assert all(isinstance(line["prediction"], str) for line in lines)


def test_gptground_ground_answers_from_the_converted_folder(converted, media, capsys):
    code = main(["ground", converted, str(media["video"]), "When does the door open?",
                 "--device", "cpu", "--max-new-tokens", "4"])
    assert code == 0 and capsys.readouterr().out.strip()


def test_safetensors_shards_convert_to_the_same_folder(released, converted, tmp_path):
    from safetensors.torch import save_file

    source = tmp_path / "release"
    source.mkdir()
    for name in os.listdir(released.folder):
        if not name.startswith("pytorch_model"):
            (source / name).write_bytes((Path(released.folder) / name).read_bytes())
    keys = sorted(released.state)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, part in halves.items():
        save_file({k: released.state[k] for k in part}, str(source / name))
    index = {"weight_map": {k: name for name, part in halves.items() for k in part}}
    (source / "model.safetensors.index.json").write_text(json.dumps(index))
    out = convert_groundinggpt(str(source), str(tmp_path / "out"), dtype=torch.float32)
    ours, theirs = folder_weights(out), folder_weights(converted)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_hub_id_that_is_not_cached_offline_stops_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["convert", "groundinggpt", "zwli/GroundingGPT", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "zwli/GroundingGPT" in err and "SRC" in err
    assert not (tmp_path / "out").exists()


def test_gptground_eval_reads_charades_sta_files_as_published(converted, media, tmp_path):
    """`--benchmark charades_sta`: the published query lines and durations CSV, no conversion;
    spans in seconds clipped to the duration, each answer the model's own to the question asked."""
    (tmp_path / "charades_sta_test.txt").write_text("a 0.2 0.9##a person opens the door.\na 0.5 3.0##the door closes.\n")
    (tmp_path / "Charades_v1_test.csv").write_text("id,subject,length\na,s1,1.2\n")
    out = tmp_path / "out"
    code = main(["eval", converted, str(tmp_path / "charades_sta_test.txt"), "--benchmark", "charades_sta",
                 "--benchmark-meta", str(tmp_path / "Charades_v1_test.csv"), "--out", str(out),
                 "--roots", f"video={media['video'].parent}", "--accelerator", "cpu", "--max-new-tokens", "6"])
    assert code == 0
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a_0", "a_1"]
    assert [line["answer"] for line in lines] == [[[0.2, 0.9]], [[0.5, 1.2]]]  # the second clipped at 1.2 s
    assert [line["duration"] for line in lines] == [1.2, 1.2]
    grounder = Grounder.load(converted, device="cpu", dtype=torch.float32, max_new_tokens=6)
    for line, sentence in zip(lines, ["a person opens the door", "the door closes"]):
        question = f"When does this happen in the video: {sentence}?"
        assert line["prediction"].strip() == grounder.chat(question, video=str(media["video"])).text.strip()
    assert json.loads((out / "metrics.json").read_text())["n"] == 2


def test_gptground_eval_refuses_benchmark_options_that_do_not_fit(converted, tmp_path, capsys):
    data = str(tmp_path / "x.txt")
    assert main(["eval", converted, data, "--benchmark", "charades_sta", "--task", "rec", "--out", str(tmp_path)]) == 2
    assert "scored as task 'tvg'" in capsys.readouterr().err
    assert main(["eval", converted, data, "--benchmark", "refcoco", "--out", str(tmp_path)]) == 2
    assert "--benchmark-meta" in capsys.readouterr().err
    assert main(["eval", converted, data, "--task", "tvg", "--split", "val", "--out", str(tmp_path)]) == 2
    assert "go with --benchmark" in capsys.readouterr().err


def test_eval_batches_a_clip_shorter_than_max_frame_with_full_ones(converted, media, tmp_path):
    """Under preprocess: groundinggpt a clip of T < max_frame frames gives T frames (the
    release reads each once), which cannot stack with full clips: the batch is split by
    shape, and each answer is the one the model gives to that clip alone."""
    from media_factory import make_video

    make_video(tmp_path / "short.mp4", num_frames=2, size=(64, 48))
    (tmp_path / "a.mp4").write_bytes(media["video"].read_bytes())
    (tmp_path / "charades_sta_test.txt").write_text("a 0.1 0.5##the door opens.\nshort 0.0 0.05##the door opens.\n")
    out = tmp_path / "out"
    code = main(["eval", converted, str(tmp_path / "charades_sta_test.txt"), "--benchmark", "charades_sta",
                 "--out", str(out), "--roots", f"video={tmp_path}", "--accelerator", "cpu",
                 "--batch-size", "2", "--max-new-tokens", "6"])
    assert code == 0
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [line.get("error") for line in lines] == [None, None]
    grounder = Grounder.load(converted, device="cpu", dtype=torch.float32, max_new_tokens=6)
    for line, clip in zip(lines, ["a.mp4", "short.mp4"]):
        alone = grounder.chat("When does this happen in the video: the door opens?", video=str(tmp_path / clip))
        assert line["prediction"].strip() == alone.text.strip()
