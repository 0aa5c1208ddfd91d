"""Annotation readers: JSON list and JSONL through fsspec, located errors, skip or fail."""

from __future__ import annotations

import json
import logging

import fsspec
import pytest

from gptground.conversation import ASSISTANT, HUMAN, Turn
from gptground.data import (
    Record,
    RecordError,
    parse_record,
    read_records,
    resolve_media_path,
)

GOOD = {
    "id": "coco-1",
    "image": "coco/1.jpg",
    "source": "refcoco",
    "conversations": [
        {"from": "human", "value": "<image>\nWhere is the man in red?"},
        {"from": "gpt", "value": "He is at [0.123, 0.456, 0.789, 0.900]."},
    ],
}


def good(i: int, **changes) -> dict:
    return {**GOOD, "id": f"r{i}", **changes}


def write_text(url: str, text: str) -> str:
    with fsspec.open(url, "wt", encoding="utf-8") as f:
        f.write(text)
    return url


def jsonl(*objs) -> str:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n"


def test_json_list_is_read_into_typed_records(tmp_path):
    path = write_text(str(tmp_path / "a.json"), json.dumps([GOOD, good(2, video="v.mp4")], indent=2))
    records = read_records(path)
    assert len(records) == 2 and records.report.kept == 2 and records.report.skipped == 0
    first = records[0]
    assert isinstance(first, Record) and first.id == "coco-1"
    assert first.conversations == [
        Turn(HUMAN, GOOD["conversations"][0]["value"]),
        Turn(ASSISTANT, GOOD["conversations"][1]["value"]),
    ]
    assert first.media == {"image": "coco/1.jpg"} and first.extra == {"source": "refcoco"}
    assert first.where == f"{path}[0]"
    assert records[1].media == {"image": "coco/1.jpg", "video": "v.mp4"}


def test_jsonl_through_a_memory_url_keeps_line_numbers():
    url = write_text("memory://readers/a.jsonl", "\n" + jsonl(GOOD, "", good(2)))
    records = read_records(url)
    assert [r.id for r in records] == ["coco-1", "r2"]
    assert [r.where for r in records] == [f"{url}:2", f"{url}:4"]


def test_record_without_id_is_named_by_its_location():
    obj = {k: v for k, v in GOOD.items() if k != "id"}
    assert parse_record(obj, "f.jsonl:7").id == "f.jsonl:7"
    assert parse_record({**GOOD, "id": 12}, "x").id == "12"


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"id": 1, "conversations": [', "invalid JSON"),
        (json.dumps(["not", "an", "object"]), "must be a JSON object"),
        (json.dumps({"id": "x", "image": "a.jpg"}), "missing 'conversations'"),
        (json.dumps(good(3, conversations=[])), "non-empty list"),
        (json.dumps(good(3, conversations=[{"from": "bot", "value": "hi"}])), "unknown role 'bot'"),
        (json.dumps(good(3, conversations=[{"from": "human", "value": 5}])), "value must be a string"),
        (json.dumps(good(3, conversations=[{"from": "human"}])), "'from' and 'value'"),
        (json.dumps(good(3, conversations=GOOD["conversations"][::-1])), "roles must alternate"),
        (json.dumps(good(3, image=["a.jpg"])), "'image' must be a non-empty path string"),
        (json.dumps(good(3, id={"a": 1})), "'id' must be a string or an integer"),
    ],
)
def test_fail_fast_names_file_line_and_reason(tmp_path, line, reason):
    path = write_text(str(tmp_path / "bad.jsonl"), jsonl(GOOD, line))
    with pytest.raises(RecordError, match=reason) as info:
        read_records(path, on_error="fail")
    assert info.value.where == f"{path}:2"
    assert str(info.value).startswith(f"{path}:2: ")


def test_bad_element_of_a_json_list_is_located_by_index(tmp_path):
    path = write_text(str(tmp_path / "bad.json"), json.dumps([GOOD, good(1), {"id": "no-conv"}]))
    with pytest.raises(RecordError, match=r"bad\.json\[2\]: missing 'conversations'"):
        read_records(path)


def test_a_json_list_that_does_not_parse_fails_even_when_skipping(tmp_path):
    path = write_text(str(tmp_path / "broken.json"), "[\n" + json.dumps(GOOD) + ",\n{oops}\n]")
    with pytest.raises(RecordError, match=r"broken\.json:3: invalid JSON list"):
        read_records(path, on_error="skip")


def test_skip_counts_bad_records_and_keeps_the_first_reasons(tmp_path, caplog):
    lines = [GOOD, "{bad", good(2, conversations=[]), good(3), "[1]"]
    path = write_text(str(tmp_path / "mixed.jsonl"), jsonl(*lines))
    with caplog.at_level(logging.WARNING, logger="gptground.data.readers"):
        records = read_records(path, on_error="skip", max_reasons=2)
    assert [r.id for r in records] == ["coco-1", "r3"]
    report = records.report
    assert (report.kept, report.skipped) == (2, 3)
    assert len(report.reasons) == 2 and report.reasons[0].startswith(f"{path}:2: invalid JSON")
    assert report.reasons[1].startswith(f"{path}:3: ")
    assert "kept 2 records, skipped 3" in caplog.text and f"{path}:2" in caplog.text


def test_media_is_checked_under_its_root_when_asked(tmp_path):
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "1.jpg").write_bytes(b"jpeg")
    path = write_text(str(tmp_path / "a.jsonl"), jsonl(GOOD, good(2, image="coco/missing.jpg")))
    assert len(read_records(path)) == 2  # not checked unless asked
    roots = {"image": str(tmp_path)}
    with pytest.raises(RecordError, match=r"a\.jsonl:2: 'image' points to a missing file: .*coco/missing\.jpg"):
        read_records(path, check_media_roots=roots)
    records = read_records(path, check_media_roots=roots, on_error="skip")
    assert [r.id for r in records] == ["coco-1"] and records.report.skipped == 1


def test_media_check_works_on_fsspec_roots():
    write_text("memory://readers-media/imgs/coco/1.jpg", "x")
    url = write_text("memory://readers-media/a.jsonl", jsonl(GOOD))
    assert len(read_records(url, check_media_roots={"image": "memory://readers-media/imgs"})) == 1
    with pytest.raises(RecordError, match="missing file"):
        read_records(url, check_media_roots={"image": "memory://readers-media/elsewhere"})


@pytest.mark.parametrize(
    "root, relative, expected",
    [
        ("/data/coco", "train/1.jpg", "/data/coco/train/1.jpg"),
        ("s3://bucket/coco/", "1.jpg", "s3://bucket/coco/1.jpg"),
        (None, "1.jpg", "1.jpg"),
        ("/data", "/abs/1.jpg", "/abs/1.jpg"),
        ("/data", "gs://b/1.jpg", "gs://b/1.jpg"),
    ],
)
def test_resolve_media_path(root, relative, expected):
    assert resolve_media_path(root, relative) == expected


def test_bad_arguments_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        read_records(str(tmp_path / "x.jsonl"), on_error="ignore")
    with pytest.raises(FileNotFoundError):
        read_records(str(tmp_path / "absent.jsonl"))


def test_empty_file_has_no_records(tmp_path):
    path = write_text(str(tmp_path / "empty.jsonl"), "\n\n")
    assert len(read_records(path)) == 0
