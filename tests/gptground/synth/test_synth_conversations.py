"""Records: GroundingGPT schema, placeholders, and answers that parse back to the ground truth."""

from __future__ import annotations

import pytest

from gptground.grounding import parse_boxes, parse_spans
from gptground.synth import read_jsonl
from gptground.synth.conversations import Dialogue, build_record

BOX_TASKS = ("rec", "grounded_caption", "sound_loc", "image_dialogue")
SPAN_TASKS = ("video_tg", "audio_tg", "video_dialogue", "audio_dialogue")


def _answers(record: dict) -> str:
    return " ".join(t["value"] for t in record["conversations"] if t["from"] == "gpt")


def test_build_record_puts_placeholders_in_the_first_turn_only():
    dialogue = Dialogue((("Which object makes this sound?", "[0.1, 0.2, 0.3, 0.4]"), ("And?", "No.")), {"task": "x"})
    record = build_record("r-1", {"sound": "audio/a.wav", "image": "images/a.png"}, dialogue, with_target=False)
    assert list(record) == ["id", "sound", "image", "conversations"]
    values = [t["value"] for t in record["conversations"]]
    assert values[0] == "<sound>\n<image>\nWhich object makes this sound?"
    assert [t["from"] for t in record["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert "<" not in values[2]
    assert build_record("r-1", {"video": "v.mp4"}, dialogue, with_target=True)["target"] == {"task": "x"}
    with pytest.raises(KeyError, match="r-1"):
        build_record("r-1", {"depth": "d.png"}, dialogue, with_target=False)


@pytest.mark.parametrize("task", BOX_TASKS)
def test_box_answers_parse_back_to_the_target_boxes(tiny_world, task):
    manifest, _ = tiny_world
    for split in ("val", "test"):
        if not manifest.files(task=task, split=split):
            continue
        for record in read_jsonl(manifest.path(task, split)):
            target = record["target"]
            boxes = parse_boxes(_answers(record), image_size=tuple(target["image_size"]))
            assert len(boxes) == len(target["boxes"]) >= 1
            for box, truth in zip(boxes, target["boxes"]):
                assert box.as_list() == pytest.approx(truth, abs=0.06)  # 3 decimals of an 80 px square
                w, h = target["image_size"]
                assert 0 <= truth[0] < truth[2] <= w and 0 <= truth[1] < truth[3] <= h


@pytest.mark.parametrize("task", SPAN_TASKS)
def test_span_answers_parse_back_to_the_target_spans(tiny_world, task):
    manifest, _ = tiny_world
    for record in read_jsonl(manifest.path(task, "val")):
        target = record["target"]
        spans = parse_spans(_answers(record), duration=target["duration"])
        assert len(spans) == len(target["spans"]) >= 1
        for span, truth in zip(spans, target["spans"]):
            assert span.as_list() == pytest.approx(truth, abs=0.005 * target["duration"] + 1e-9)


def test_stage_two_answers_are_bare_and_stage_three_mixes_text(tiny_world):
    manifest, _ = tiny_world
    for task in ("rec", "sound_loc", "video_tg", "audio_tg"):
        for record in read_jsonl(manifest.path(task, "train")):
            answer = _answers(record)
            assert answer[0] in "[{" and answer[-1] in "]}"
    for task in ("image_dialogue", "video_dialogue", "audio_dialogue"):
        for record in read_jsonl(manifest.path(task, "train")):
            turns = record["conversations"]
            assert len(turns) >= 4 and turns[1]["value"].endswith(".")
            assert not any(c in turns[1]["value"] for c in "[{")  # the first answer is free text


def test_captions_name_what_the_grounding_tasks_ask_about(tiny_world):
    manifest, _ = tiny_world
    captions = {r["image"]: _answers(r) for r in read_jsonl(manifest.path("image_caption", "val"))}
    for record in read_jsonl(manifest.path("rec", "val")):
        if record["image"] in captions:
            noun = " ".join(record["target"]["query"].split()[-2:])
            assert noun in captions[record["image"]]
