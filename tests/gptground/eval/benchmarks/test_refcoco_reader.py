"""RefCOCO readers on small files written in the three published layouts."""

import json
import pickle

import pytest

from gptground.eval.benchmarks import read_minigptv2_ref, read_refer, read_shikra_rec
from gptground.eval.errors import EvalInputError
from gptground.grounding.types import Box

INSTANCES = {
    "images": [
        {"id": 98304, "file_name": "COCO_train2014_000000098304.jpg", "height": 424, "width": 640}
    ],
    "annotations": [
        {"id": 3007, "image_id": 98304, "bbox": [263.87, 216.88, 21.13, 15.17], "category_id": 18},
        {"id": 3008, "image_id": 98304, "bbox": [10, 20, 30, 40], "category_id": 1},
    ],
}
REFS = [
    {
        "ref_id": 0,
        "ann_id": 3007,
        "image_id": 98304,
        "split": "val",
        "file_name": "COCO_train2014_000000098304_3007.jpg",
        "sent_ids": [0, 1],
        "sentences": [
            {"sent_id": 0, "sent": "the small dog", "raw": "The small dog", "tokens": []},
            {"sent_id": 1, "sent": "dog on the left", "raw": "dog on the left", "tokens": []},
        ],
    },
    {
        "ref_id": 1,
        "ann_id": 3008,
        "image_id": 98304,
        "split": "testA",
        "sentences": [{"sent_id": 2, "sent": "man in red"}],
    },
]


@pytest.fixture
def refer_files(tmp_path):
    (tmp_path / "instances.json").write_text(json.dumps(INSTANCES))
    (tmp_path / "refs(unc).json").write_text(json.dumps(REFS))
    (tmp_path / "refs(unc).p").write_bytes(pickle.dumps(REFS))
    return tmp_path


def test_refer_json_layout(refer_files):
    items = list(read_refer(refer_files / "refs(unc).json", refer_files / "instances.json"))
    assert [item.id for item in items] == ["0_0", "0_1", "1_2"]
    first = items[0]
    assert first.image == "COCO_train2014_000000098304.jpg"
    assert first.expression == "the small dog"
    assert first.image_size == (640, 424)
    assert first.split == "val"
    # COCO [x, y, w, h] -> corners: x2 = 263.87 + 21.13 = 285.0, y2 = 216.88 + 15.17 = 232.05
    (box,) = first.boxes
    assert box.as_list() == pytest.approx([263.87, 216.88, 285.0, 232.05])
    assert items[2].boxes == (Box(10, 20, 40, 60),)


def test_refer_split_filter(refer_files):
    items = read_refer(
        refer_files / "refs(unc).json", refer_files / "instances.json", split="testA"
    )
    assert [item.expression for item in items] == ["man in red"]


def test_refer_pickle_is_refused_by_default(refer_files):
    with pytest.raises(EvalInputError, match="allow_pickle=True"):
        list(read_refer(refer_files / "refs(unc).p", refer_files / "instances.json"))


def test_refer_pickle_with_explicit_flag_warns_and_reads(refer_files):
    with pytest.warns(UserWarning, match="unpickling"):
        items = list(
            read_refer(
                refer_files / "refs(unc).p", refer_files / "instances.json", allow_pickle=True
            )
        )
    assert len(items) == 3


def test_refer_unknown_annotation_names_the_record(refer_files):
    refs = [dict(REFS[0], ann_id=999)]
    (refer_files / "bad.json").write_text(json.dumps(refs))
    with pytest.raises(EvalInputError, match=r"bad\.json \(record 0\): ann_id 999"):
        list(read_refer(refer_files / "bad.json", refer_files / "instances.json"))


def test_shikra_jsonl(tmp_path):
    path = tmp_path / "REC_refcoco_unc_val.jsonl"
    records = [
        {
            "img_path": "COCO_train2014_000000580957.jpg",
            "expression": "bowl behind the others",
            "bbox": [103.5, 240.0, 263.0, 370.0],
            "dataset_name": "refcoco",
            "height": 427,
            "width": 640,
        },
        {
            "img_path": "COCO_train2014_000000000001.jpg",
            "expression": "left man",
            "bbox": [0, 0, 5, 5],
            "height": 10,
            "width": 20,
        },
    ]
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    items = list(read_shikra_rec(path))
    assert [item.id for item in items] == ["0", "1"]
    assert items[0].boxes == (Box(103.5, 240.0, 263.0, 370.0),)
    assert items[0].image_size == (640, 427)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"img_path": "a.jpg", "expression": "x", "height": 1, "width": 1}', "missing key 'bbox'"),
        (
            '{"img_path": "a.jpg", "expression": "x", "bbox": [1, 2, 3], "height": 1, "width": 1}',
            "bbox must be a list of 4 numbers",
        ),
        (
            '{"img_path": "a.jpg", "expression": "x", "bbox": [1, 2, 3, 4], '
            '"height": 0, "width": 1}',
            "height must be a positive",
        ),
        ('{"img_path": "a.jpg", "expression": 5', "invalid JSON"),
    ],
)
def test_shikra_bad_line_names_file_and_line(tmp_path, line, message):
    good = '{"img_path": "a.jpg", "expression": "x", "bbox": [1, 2, 3, 4], "height": 9, "width": 9}'
    path = tmp_path / "rec.jsonl"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(EvalInputError, match=rf"rec\.jsonl:3: .*{message}"):
        list(read_shikra_rec(path))


def test_minigptv2_json(tmp_path):
    path = tmp_path / "refcoco_val.json"
    records = [
        {
            "img_id": "COCO_train2014_000000581857_16",
            "sents": "the lady with the blue shirt",
            "bbox": [10, 20, 30, 40],
            "height": 480,
            "width": 640,
        },
    ]
    path.write_text(json.dumps(records))
    (item,) = read_minigptv2_ref(path)
    assert item.id == "COCO_train2014_000000581857_16"
    assert item.image == "COCO_train2014_000000581857.jpg"
    # [x, y, w, h] = [10, 20, 30, 40] -> [10, 20, 40, 60]
    assert item.boxes == (Box(10, 20, 40, 60),)
    assert item.image_size == (640, 480)


def test_minigptv2_rejects_non_coco_id(tmp_path):
    path = tmp_path / "refcoco_val.json"
    path.write_text(
        json.dumps(
            [{"img_id": "img7", "sents": "x", "bbox": [0, 0, 1, 1], "height": 2, "width": 2}]
        )
    )
    with pytest.raises(EvalInputError, match=r"\(record 0\): 'img_id' 'img7'"):
        list(read_minigptv2_ref(path))
