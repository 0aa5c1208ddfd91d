"""The Python API end to end on a tiny model: values (answers fixed by construction), caching, errors."""

from __future__ import annotations

import glob

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from scripted import script_answers
from tiny_assets import REPO, SMALL

from gptground import api
from gptground.api import BoxGrounding, ChatReply, Grounder, ModalityUnavailableError, SpanGrounding
from gptground.config import load_recipe
from gptground.grounding import Box
from gptground.model.build import build_model
from gptground.model.folder import save_model_folder
from gptground.synth import read_jsonl
from modalities import MediaNotFoundError, UnsupportedMediaError


@pytest.fixture(scope="module")
def grounder(model_folder) -> Grounder:
    return Grounder.load(model_folder, max_new_tokens=6)


@pytest.fixture
def fresh(model_folder) -> Grounder:
    """A Grounder with an empty cache, for tests that count encoder calls."""
    return Grounder.load(model_folder, max_new_tokens=4)


def media(world, pattern: str) -> str:
    return min(glob.glob(str(world.root / pattern)))


def first_target(world, task: str) -> tuple[dict, str]:
    record = read_jsonl(world.path(task, "test"))[0]
    return record, str(world.root)


def test_load_defaults_to_cpu_float32(grounder):
    parameter = next(grounder.model.parameters())
    assert parameter.device.type == "cpu" and parameter.dtype == torch.float32
    assert grounder.modalities == ["audio", "image", "video"]


def test_bfloat16_weights_take_bfloat16_inputs(model_folder, world):
    half = Grounder.load(model_folder, dtype=torch.bfloat16, max_new_tokens=2)
    assert next(half.model.parameters()).dtype == torch.bfloat16
    record, root = first_target(world, "audio_tg")
    assert isinstance(half.ground_audio(f"{root}/{record['sound']}", "When?"), SpanGrounding)


def test_ground_image_gives_pixels_of_the_original_image(grounder, world):
    path = media(world, "images/test/img-*.png")
    answer = grounder.ground_image(path, "Where is the red circle?")
    assert isinstance(answer, BoxGrounding)
    assert isinstance(answer.text, str) and answer.query == "Where is the red circle?"
    assert answer.image_size == Image.open(path).size
    assert all(isinstance(b, Box) for b in answer.boxes)


def test_a_list_of_questions_gives_a_list_in_order(grounder, world):
    record, root = first_target(world, "video_tg")
    questions = ["When does it move?", "When is it red?", "When does it appear?"]
    answers = grounder.ground_video(f"{root}/{record['video']}", questions)
    assert [a.query for a in answers] == questions
    assert all(isinstance(a, SpanGrounding) for a in answers)
    assert answers[0].duration == pytest.approx(record["target"]["duration"])


def test_audio_and_sound_location_answers_are_typed(grounder, world):
    record, root = first_target(world, "audio_tg")
    answer = grounder.ground_audio(f"{root}/{record['sound']}", "When do you hear the beep?")
    assert isinstance(answer, SpanGrounding)
    assert answer.duration == pytest.approx(record["target"]["duration"])
    pair, root = first_target(world, "sound_loc")
    located = grounder.locate_sound(f"{root}/{pair['image']}", f"{root}/{pair['sound']}")
    assert isinstance(located, BoxGrounding)
    assert located.image_size == tuple(pair["target"]["image_size"])


def test_answers_are_parsed_with_the_original_size_and_failures_reported(grounder, world, monkeypatch):
    path = media(world, "images/test/img-*.png")
    width, height = Image.open(path).size
    texts = iter(["It is at [0.0, 0.2, 1.0, 0.8].", "It is at [0.1, 0.2, oops]"])
    monkeypatch.setattr(api, "generate_batch", lambda model, proc, samples, *a, **k: [next(texts) for _ in samples])
    good, bad = grounder.ground_image(path, ["Where is the red circle?", "And the square?"])
    side = max(width, height)  # 0-1 of the padded square, the image centred in it
    dy = (side - height) // 2
    assert good.box == Box(0.0, 0.2 * side - dy, float(side), 0.8 * side - dy) and not good.failures
    assert bad.boxes == () and bad.box is None and bad.failures


def test_many_questions_about_one_video_encode_it_once(fresh, world, monkeypatch):
    video = fresh.model.modalities["video"]
    calls = []
    original = video.encode
    monkeypatch.setattr(video, "encode", lambda x: calls.append(x.shape) or original(x))
    record, root = first_target(world, "video_tg")
    path = f"{root}/{record['video']}"
    fresh.ground_video(path, ["When does it move?", "When is it red?", "When does it appear?"])
    fresh.ground_video(path, "When does it stop?")
    fresh.chat("What happens in the video?", video=path)
    assert len(calls) == 1
    other = max(glob.glob(str(world.root / "videos/test/*.mp4")))
    fresh.ground_video(other, "When does it move?")
    assert len(calls) == 2 and fresh.cache.hits == 2


def test_chat_keeps_the_history(fresh, world, monkeypatch):
    prompts = []
    real = api.generate_batch

    def spy(model, processor, samples, *args, **kwargs):
        prompts.extend(processor.tokenizer.decode(s.input_ids, skip_special_tokens=True) for s in samples)
        return real(model, processor, samples, *args, **kwargs)

    monkeypatch.setattr(api, "generate_batch", spy)
    chat = fresh.start_chat(image=media(world, "images/test/img-*.png"))
    first = chat.ask("What shapes are there?")
    second = chat.ask("Where is the red one?")
    assert isinstance(first, ChatReply) and isinstance(second, ChatReply)
    assert [t.role for t in chat.turns] == ["human", "assistant", "human", "assistant"]
    assert chat.turns[1].value == first.text
    assert "What shapes are there?" in prompts[1] and "Where is the red one?" in prompts[1]
    chat.reset()
    assert chat.turns == []


def test_chat_takes_a_list_of_messages(grounder, world):
    messages = [
        {"role": "user", "content": "What shapes are there?"},
        {"role": "assistant", "content": "A red circle."},
        {"role": "user", "content": "Where is it?"},
    ]
    reply = grounder.chat(messages, image=media(world, "images/test/img-*.png"))
    assert isinstance(reply, ChatReply) and isinstance(reply.text, str)
    with pytest.raises(ValueError, match="must end with a question"):
        grounder.chat(messages[:2])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "query must be"),
        ("   ", "query must be"),
        ([], "query is an empty list"),
        (["ok?", ""], r"query\[1\] must be"),
    ],
)
def test_empty_questions_are_refused_by_name(grounder, world, query, message):
    with pytest.raises(ValueError, match=message):
        grounder.ground_image(media(world, "images/test/img-*.png"), query)


def test_missing_and_unsupported_media_raise_typed_errors(grounder, tmp_path):
    with pytest.raises(MediaNotFoundError, match="nope.png"):
        grounder.ground_image(tmp_path / "nope.png", "Where is it?")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(UnsupportedMediaError, match="notes.png"):
        grounder.ground_image(text, "Where is it?")


def test_a_model_without_the_modality_says_so(tmp_path, world):
    recipe = load_recipe(str(REPO / "recipes/tiny/stage2.yaml"), SMALL)
    recipe.model.modalities = {"image": recipe.model.modalities["image"]}
    model, tokenizer = build_model(recipe.model)
    folder = save_model_folder(model, tokenizer, recipe.model, str(tmp_path / "image-only"))
    image_only = Grounder.load(folder, max_new_tokens=2)
    with pytest.raises(ModalityUnavailableError, match=r"'video' modality; it reads: image"):
        image_only.ground_video(media(world, "videos/test/*.mp4"), "When?")


def test_load_writes_and_reads_as_the_folder_records_unless_told_otherwise(tmp_path):
    recipe = load_recipe(str(REPO / "recipes/tiny/stage2.yaml"), SMALL)
    model, tokenizer = build_model(recipe.model)
    folder = save_model_folder(
        model, tokenizer, recipe.model, str(tmp_path / "m"), template="groundinggpt_short", grounding_format="shikra"
    )
    recorded = Grounder.load(folder, max_new_tokens=2)
    assert (recorded.processor.template.name, recorded.format.name) == ("groundinggpt_short", "shikra")
    told = Grounder.load(folder, template="vicuna_v1", fmt="groundinggpt", max_new_tokens=2)
    assert (told.processor.template.name, told.format.name) == ("vicuna_v1", "groundinggpt")
    # A folder written before the settings were recorded was trained on GroundingGPT's.
    config = OmegaConf.load(f"{folder}/config.yaml")
    del config["text"]
    OmegaConf.save(config, f"{folder}/config.yaml")
    legacy = Grounder.load(folder, max_new_tokens=2)
    assert (legacy.processor.template.name, legacy.format.name) == ("groundinggpt", "groundinggpt")


# --- values, with an answer fixed by construction ---------------------------------------------
@pytest.fixture(scope="module")
def long_grounder(model_folder) -> Grounder:
    """Room for a whole scripted answer (the characters of four coordinates and the stop)."""
    return Grounder.load(model_folder, max_new_tokens=40)


def _image_of_size(world, size: tuple[int, int]) -> str:
    return next(p for p in sorted(glob.glob(str(world.root / "images/test/*.png"))) if Image.open(p).size == size)


def test_a_box_answer_comes_back_in_pixels_of_the_original_image(long_grounder, world, monkeypatch):
    # 80 x 48 pads to an 80-pixel square with 16 rows above (LLaVA's (80 - 48) // 2):
    # x = 0.25 * 80, 0.75 * 80 -> 20, 60; y = 0.375 * 80 - 16, 0.625 * 80 - 16 -> 14, 34.
    path = _image_of_size(world, (80, 48))
    script_answers(monkeypatch, long_grounder.processor.tokenizer, "[0.25, 0.375, 0.75, 0.625]")
    answer = long_grounder.ground_image(path, "Where is the red circle?")
    assert answer.text == "[0.25, 0.375, 0.75, 0.625]"
    assert answer.boxes == (Box(20.0, 14.0, 60.0, 34.0),) and answer.image_size == (80, 48)
    assert answer.failures == ()
    chat = long_grounder.chat("Where is it?", image=path)
    assert chat.boxes == (Box(20.0, 14.0, 60.0, 34.0),) and chat.spans == ()


def test_a_span_answer_comes_back_in_seconds_of_the_clip(long_grounder, world, monkeypatch):
    script_answers(monkeypatch, long_grounder.processor.tokenizer, "{0.25,0.75}")
    for task, key, ground in (("video_tg", "video", long_grounder.ground_video), ("audio_tg", "sound", long_grounder.ground_audio)):
        record, root = first_target(world, task)
        duration = record["target"]["duration"]  # 2 or 3 s
        answers = ground(f"{root}/{record[key]}", ["When does it happen?", "And again?"])
        for answer in answers:
            assert answer.duration == pytest.approx(duration, abs=1e-6)
            assert len(answer.spans) == 1
            assert answer.span.as_list() == pytest.approx([0.25 * duration, 0.75 * duration], abs=1e-6)


def test_the_sound_source_box_is_in_pixels_of_the_image(long_grounder, world, monkeypatch):
    pair, root = first_target(world, "sound_loc")
    width, height = pair["target"]["image_size"]
    side = max(width, height)
    dx, dy = (side - width) // 2, (side - height) // 2
    script_answers(monkeypatch, long_grounder.processor.tokenizer, "[0.5, 0.5, 0.75, 0.75]")
    located = long_grounder.locate_sound(f"{root}/{pair['image']}", f"{root}/{pair['sound']}")
    assert located.box == Box(0.5 * side - dx, 0.5 * side - dy, 0.75 * side - dx, 0.75 * side - dy)
