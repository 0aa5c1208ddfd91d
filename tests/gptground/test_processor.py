"""Processor: placeholder expansion, the loss mask, truncation, errors, and the prompt path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from media_fakes import FakeAudio, FakeImage, all_fakes, write_npy

from gptground.conversation import ASSISTANT, HUMAN, Turn, get_template, render_text
from gptground.data.readers import Record
from gptground.processor import (
    IGNORE_INDEX,
    Processor,
    SampleError,
    SampleMediaError,
    add_modality_tokens,
    modality_token_ids,
)
from gptground.tokenizer import load_tokenizer
from modalities.errors import MediaNotFoundError

QUESTION = "Where is the man in red?"
ANSWER = "He is at [0.123, 0.456, 0.789, 0.900]."
IMAGE_BLOCK = "<im_start>" + "<im_patch>" * FakeImage.tokens + "<im_end>"


@pytest.fixture
def tokenizer():
    return load_tokenizer("builtin:tiny")


@pytest.fixture
def media_dir(tmp_path):
    write_npy(str(tmp_path / "img.npy"), np.arange(12, dtype=np.uint8).reshape(3, 4))  # W=4, H=3
    write_npy(str(tmp_path / "snd.npy"), np.linspace(-1, 1, 20, dtype=np.float32))
    write_npy(str(tmp_path / "vid.npy"), np.ones((5, 2, 2), dtype=np.uint8))
    return tmp_path


@pytest.fixture
def processor(tokenizer, media_dir):
    roots = {"image": str(media_dir), "sound": str(media_dir), "video": str(media_dir)}
    return Processor(tokenizer, all_fakes(), max_length=512, media_roots=roots)


def record(*values: str, sid: str = "s1", **media: str) -> dict:
    """A raw record whose turns alternate human / gpt."""
    turns = [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]
    return {"id": sid, "conversations": turns, **media}


def runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D bool tensor."""
    padded = torch.cat([torch.tensor([False]), mask, torch.tensor([False])]).int()
    edges = torch.diff(padded).nonzero().flatten().tolist()
    return list(zip(edges[::2], edges[1::2]))


# --- placeholder expansion -------------------------------------------------------------------
def test_placeholder_becomes_start_patches_end_in_place(processor, tokenizer):
    sample = processor(record(f"<image>\n{QUESTION}", ANSWER, image="img.npy"))
    ids = processor.token_ids["image"]
    patches = (sample.input_ids == ids.patch).nonzero().flatten()
    assert len(patches) == FakeImage.tokens
    assert patches.tolist() == list(range(patches[0], patches[0] + FakeImage.tokens))  # one contiguous block
    assert sample.input_ids[patches[0] - 1] == ids.start and sample.input_ids[patches[-1] + 1] == ids.end
    assert (sample.input_ids == ids.start).sum() == 1 and (sample.input_ids == ids.end).sum() == 1
    text = render_text(get_template("groundinggpt"), [Turn(HUMAN, f"<image>\n{QUESTION}"), Turn(ASSISTANT, ANSWER)])
    assert tokenizer.decode(sample.input_ids[1:]) == text.replace("<image>", IMAGE_BLOCK)


def test_media_last_template_puts_the_media_tokens_after_the_question_in_training_and_prompts(
    tokenizer, media_dir
):
    roots = {"image": str(media_dir)}
    processor = Processor(tokenizer, all_fakes(), "groundinggpt_short_media_last", max_length=512, media_roots=roots)
    sample = processor(record(f"<image>\n{QUESTION}", ANSWER, image="img.npy"))
    text = tokenizer.decode(sample.input_ids[1:])
    assert text.startswith(f"### Human: {QUESTION}\n{IMAGE_BLOCK}\n### Assistant:")
    prompt = processor.prompt(QUESTION, {"image": str(media_dir / "img.npy")})  # the API adds "<image>\n"
    assert torch.equal(prompt.input_ids, sample.input_ids[: len(prompt.input_ids)])


def test_two_modalities_and_the_audio_alias_expand_to_their_own_tokens(processor):
    sample = processor(record(f"<image><audio>\n{QUESTION}", ANSWER, image="img.npy", sound="snd.npy"))
    for name, count in (("image", FakeImage.tokens), ("audio", FakeAudio.tokens)):
        ids = processor.token_ids[name]
        assert (sample.input_ids == ids.patch).sum() == count
        assert (sample.input_ids == ids.start).sum() == 1 and (sample.input_ids == ids.end).sum() == 1
    assert sorted(sample.media) == ["audio", "image"]
    assert (sample.input_ids == processor.token_ids["video"].patch).sum() == 0


def test_media_tokens_are_never_trained(processor):
    sample = processor(record(f"<video>\n{QUESTION}", ANSWER, video="vid.npy"))
    special = torch.tensor(processor.new_token_ids)
    assert (sample.labels[torch.isin(sample.input_ids, special)] == IGNORE_INDEX).all()


# --- the loss mask ---------------------------------------------------------------------------
def test_labels_cover_exactly_the_answer_and_its_closing_separator(processor, tokenizer):
    sample = processor(record(f"<image>\n{QUESTION}", ANSWER, image="img.npy"))
    trained = sample.labels != IGNORE_INDEX
    assert runs(trained) == [(len(sample.labels) - int(trained.sum()), len(sample.labels))]  # one run, at the end
    assert tokenizer.decode(sample.input_ids[trained]) == f" {ANSWER}\n###"
    assert torch.equal(sample.labels[trained], sample.input_ids[trained])
    assert tokenizer.decode(sample.input_ids[~trained][1:]).endswith(f"{QUESTION}\n### Assistant:")


@pytest.mark.parametrize("template, sep", [("groundinggpt", "\n###"), ("llava_v0", "###"), ("vicuna_v1", "</s>")])
def test_every_assistant_turn_is_trained_and_every_human_turn_masked(tokenizer, template, sep):
    processor = Processor(tokenizer, {}, template=template, max_length=512)
    sample = processor(record("q one?", "a one.", "q two?", "a two."))
    trained_runs = runs(sample.labels != IGNORE_INDEX)
    assert [tokenizer.decode(sample.input_ids[a:b]) for a, b in trained_runs] == [f" a one.{sep}", f" a two.{sep}"]
    between = tokenizer.decode(sample.input_ids[trained_runs[0][1] : trained_runs[1][0]])
    header = get_template(template).role_header
    assert between == f"{header(HUMAN)} q two?{get_template(template).seps[0]}{header(ASSISTANT)}"


def test_vicuna_eos_separator_is_the_eos_token(tokenizer):
    sample = Processor(tokenizer, {}, template="vicuna_v1")(record("q?", "a."))
    assert sample.input_ids[-1] == tokenizer.eos_token_id == sample.labels[-1]


# --- truncation ------------------------------------------------------------------------------
def test_a_long_answer_is_cut_at_max_length(tokenizer, media_dir):
    raw = record(QUESTION, ANSWER * 3)
    full = Processor(load_tokenizer("builtin:tiny"), {}, max_length=4096)(raw)
    cut = Processor(tokenizer, {}, max_length=len(full.input_ids) - 5)(raw)
    assert len(cut.input_ids) == len(full.input_ids) - 5
    assert torch.equal(cut.input_ids, full.input_ids[:-5]) and torch.equal(cut.labels, full.labels[:-5])
    assert (cut.labels != IGNORE_INDEX).any()


def test_sample_exactly_max_length_is_kept_whole(tokenizer):
    raw = record(QUESTION, ANSWER)
    full = Processor(load_tokenizer("builtin:tiny"), {}, max_length=4096)(raw)
    same = Processor(tokenizer, {}, max_length=len(full.input_ids))(raw)
    assert torch.equal(same.input_ids, full.input_ids)


def test_cut_inside_the_media_tokens_is_an_error(tokenizer, media_dir):
    raw = record(f"<image>\n{QUESTION}", ANSWER, sid="cut-me", image="img.npy")
    roots = {"image": str(media_dir)}
    probe = Processor(load_tokenizer("builtin:tiny"), all_fakes(), media_roots=roots)
    first_patch = int((probe(raw).input_ids == probe.token_ids["image"].patch).nonzero()[0])
    processor = Processor(tokenizer, all_fakes(), max_length=first_patch + 2, media_roots=roots)
    with pytest.raises(SampleError, match="cut-me.*cuts the image tokens"):
        processor(raw)


def test_media_block_entirely_beyond_the_cut_is_an_error(tokenizer, media_dir):
    raw = record("Hi.", "Hello.", f"<image>\n{QUESTION}", ANSWER, sid="late-image", image="img.npy")
    roots = {"image": str(media_dir)}
    probe = Processor(load_tokenizer("builtin:tiny"), all_fakes(), media_roots=roots)(raw)
    first_answer_end = runs(probe.labels != IGNORE_INDEX)[0][1]
    processor = Processor(tokenizer, all_fakes(), max_length=first_answer_end, media_roots=roots)
    with pytest.raises(SampleError, match="late-image.*cuts the image tokens"):
        processor(raw)


def test_all_assistant_tokens_cut_off_is_an_error_not_an_empty_sample(tokenizer):
    raw = record(QUESTION * 5, ANSWER, sid="too-long")
    probe = Processor(load_tokenizer("builtin:tiny"), {}, max_length=4096)(raw)
    first_trained = runs(probe.labels != IGNORE_INDEX)[0][0]
    with pytest.raises(SampleError, match="too-long.*nothing to train on"):
        Processor(tokenizer, {}, max_length=first_trained)(raw)


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, message",
    [
        (record(QUESTION, ANSWER, image="img.npy"), "image media but no <image> placeholder"),
        (record(f"<image>\n{QUESTION}", ANSWER), "has <image> but the sample has no image media"),
        (record(f"<image><image>\n{QUESTION}", ANSWER, image="img.npy"), "2 <image> placeholders"),
        (record(f"<sound><audio>\n{QUESTION}", ANSWER, sound="snd.npy"), "2 <sound> placeholders"),
        (record(QUESTION, f"<image> {ANSWER}", image="img.npy"), "assistant.*placeholder"),
        (record(QUESTION, ANSWER, QUESTION), "must end with an 'assistant' turn"),
        (record(f"see <im_patch> {QUESTION}", ANSWER), "reserved token.*<im_patch>"),
        (record(QUESTION, f"{ANSWER}</s>"), r"reserved token.*</s>"),
        ({"id": "s1", "conversations": [{"from": "system", "value": "x"}]}, "unknown role 'system'"),
        ({"id": "s1", "conversations": [{"from": "gpt", "value": "x"}]}, "roles must alternate"),
        ({"id": "s1", "image": "img.npy"}, "missing 'conversations'"),
    ],
)
def test_bad_samples_raise_sample_error_naming_the_sample(processor, raw, message):
    with pytest.raises(SampleError, match=message) as info:
        processor(raw)
    assert info.value.sample_id == "s1" and "'s1'" in str(info.value)


def test_turns_out_of_order_in_a_typed_record(processor):
    turns = [Turn(HUMAN, "a"), Turn(HUMAN, "b")]
    with pytest.raises(SampleError, match="rec-7.*turn 1"):
        processor(Record(id="rec-7", conversations=turns))


def test_media_key_no_modality_reads_is_an_error(tokenizer, media_dir):
    processor = Processor(tokenizer, {"image": FakeImage()})
    with pytest.raises(SampleError, match=r"s1.*\['video'\] are read by no modality"):
        processor(record(f"<video>\n{QUESTION}", ANSWER, video="vid.npy"))


def test_missing_media_file_is_a_sample_media_error_wrapping_the_media_error(processor):
    with pytest.raises(SampleMediaError, match="s1.*nope.npy") as info:
        processor(record(f"<image>\n{QUESTION}", ANSWER, image="nope.npy"))
    assert isinstance(info.value.media_error, MediaNotFoundError)
    assert info.value.__cause__ is info.value.media_error


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_length": 0}, "max_length"),
        ({"media_roots": {"audio": "/data"}}, "media_roots key 'audio'"),
        ({"template": "nope"}, "unknown conversation template"),
        ({"modalities": {"picture": FakeImage()}}, r"modalities\['picture'\]"),
    ],
)
def test_bad_processor_arguments(tokenizer, kwargs, message):
    args = {"modalities": all_fakes(), **kwargs}
    with pytest.raises(ValueError, match=message):
        Processor(tokenizer, **args)


# --- media -----------------------------------------------------------------------------------
def test_media_is_loaded_from_its_root_and_transformed(processor):
    sample = processor(record(f"<image>\n{QUESTION}", ANSWER, image="img.npy"))
    assert torch.equal(sample.media["image"][:12], torch.arange(12, dtype=torch.float32))
    meta = sample.media_meta["image"]
    assert meta.size == (4, 3) and meta.source.endswith("img.npy") and meta.duration == 3.0


def test_train_flag_selects_the_train_transform(tokenizer, media_dir):
    roots = {"image": str(media_dir)}
    raw = record(f"<image>\n{QUESTION}", ANSWER, image="img.npy")
    eval_x = Processor(load_tokenizer("builtin:tiny"), all_fakes(), media_roots=roots)(raw).media["image"]
    train_x = Processor(tokenizer, all_fakes(), media_roots=roots, train=True)(raw).media["image"]
    assert torch.equal(train_x, eval_x + 1.0)


def test_media_roots_may_be_fsspec_urls(tokenizer):
    write_npy("memory://processor-test/imgs/a.npy", np.zeros((2, 2), dtype=np.uint8))
    processor = Processor(tokenizer, all_fakes(), media_roots={"image": "memory://processor-test/imgs/"})
    sample = processor(record(f"<image>\n{QUESTION}", ANSWER, image="a.npy"))
    assert sample.media_meta["image"].source == "memory://processor-test/imgs/a.npy"


# --- special tokens --------------------------------------------------------------------------
def test_add_modality_tokens_adds_nine_special_tokens_once(tokenizer):
    size = len(tokenizer)
    new = add_modality_tokens(tokenizer, all_fakes().values())
    assert new == list(range(size, size + 9))
    assert tokenizer.convert_ids_to_tokens(new[:3]) == ["<so_start>", "<so_patch>", "<so_end>"]  # by name: audio first
    assert add_modality_tokens(tokenizer, all_fakes().values()) == []
    assert len(tokenizer) == size + 9
    ids = modality_token_ids(tokenizer, all_fakes())
    assert (ids["image"].start, ids["image"].patch, ids["image"].end) == tuple(
        tokenizer.convert_tokens_to_ids(["<im_start>", "<im_patch>", "<im_end>"])
    )
    assert tokenizer.encode("<vi_patch><vi_patch>", add_special_tokens=False) == [ids["video"].patch] * 2


def test_modality_token_ids_requires_the_tokens(tokenizer):
    with pytest.raises(ValueError, match="add_modality_tokens"):
        modality_token_ids(tokenizer, {"image": FakeImage()})


# --- inference prompt ------------------------------------------------------------------------
def test_prompt_equals_the_training_prefix_with_media(processor, media_dir):
    train = processor(record(f"<image>\n{QUESTION}", ANSWER, image="img.npy"))
    prompt = processor.prompt(QUESTION, media={"image": str(media_dir / "img.npy")})
    assert torch.equal(prompt.input_ids, train.input_ids[: len(prompt.input_ids)])
    assert (prompt.labels == IGNORE_INDEX).all()
    assert torch.equal(prompt.media["image"], train.media["image"])
    first_trained = runs(train.labels != IGNORE_INDEX)[0][0]
    assert len(prompt.input_ids) == first_trained  # the answer starts right after the prompt


def test_prompt_keeps_a_placeholder_already_in_the_question(processor, media_dir):
    media = {"audio": str(media_dir / "snd.npy")}
    inserted = processor.prompt("What is it?", media=media)
    written = processor.prompt("<sound>\nWhat is it?", media=media)
    assert torch.equal(inserted.input_ids, written.input_ids)
    assert (written.input_ids == processor.token_ids["audio"].patch).sum() == FakeAudio.tokens


def test_prompt_accepts_decoded_media_and_a_conversation(processor, media_dir):
    image = FakeImage().load(str(media_dir / "img.npy"))
    turns = [Turn(HUMAN, f"<image>\n{QUESTION}"), Turn(ASSISTANT, ANSWER), Turn(HUMAN, "And the dog?")]
    prompt = processor.prompt(turns, media={"image": image}, sample_id="chat")
    train = processor(record(f"<image>\n{QUESTION}", ANSWER, "And the dog?", "Here.", image="img.npy"))
    assert torch.equal(prompt.input_ids, train.input_ids[: len(prompt.input_ids)])
    assert prompt.media_meta["image"].size == (4, 3)


def test_prompt_errors_name_the_prompt(processor, tokenizer):
    with pytest.raises(SampleError, match="q1.*unknown modality 'depth'"):
        processor.prompt(QUESTION, media={"depth": "x.npy"}, sample_id="q1")
    short = Processor(tokenizer, {}, max_length=8)
    with pytest.raises(SampleError, match="q2.*more than max_length=8"):
        short.prompt(QUESTION, sample_id="q2")
