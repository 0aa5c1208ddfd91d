"""VGG-SS and Clotho readers on small files in their layouts."""

import json

import pytest

from gptground.eval.benchmarks import read_clotho, read_vggss
from gptground.eval.errors import EvalInputError
from gptground.grounding.types import Box

VGGSS = [
    {"file": "-0_hjFmiNPk_000030", "bbox": [[0.1, 0.2, 0.5, 0.7]], "class": "playing guitar"},
    {"file": "zzz5TqBn1Ew_000010", "bbox": [[-0.1, 0.0, 1.2, 1.0], [0.0, 0.5, 0.25, 1.0]]},
]


def test_vggss_fixed_frame_size(tmp_path):
    path = tmp_path / "vggss.json"
    path.write_text(json.dumps(VGGSS))
    first, second = read_vggss(path, image_size=(224, 224))
    assert (first.id, first.image, first.sound) == (
        "-0_hjFmiNPk_000030",
        "-0_hjFmiNPk_000030.jpg",
        "-0_hjFmiNPk_000030.wav",
    )
    assert first.label == "playing guitar" and second.label is None
    # 0.1*224 = 22.4, 0.2*224 = 44.8, 0.5*224 = 112, 0.7*224 = 156.8
    assert first.boxes[0].as_list() == pytest.approx([22.4, 44.8, 112.0, 156.8])
    # out-of-range coordinates clipped to [0, 1] first
    assert second.boxes == (Box(0, 0, 224, 224), Box(0, 112, 56, 224))


def test_vggss_size_per_clip(tmp_path):
    path = tmp_path / "vggss.json"
    path.write_text(json.dumps(VGGSS[:1]))
    (item,) = read_vggss(path, image_size={"-0_hjFmiNPk_000030": (640, 360)})
    # 0.1*640 = 64, 0.2*360 = 72, 0.5*640 = 320, 0.7*360 = 252
    assert item.boxes[0].as_list() == pytest.approx([64, 72, 320, 252])
    assert item.image_size == (640, 360)
    with pytest.raises(EvalInputError, match=r"\(record 0\): clip '-0_hjFmiNPk_000030' has no"):
        list(read_vggss(path, image_size={}))


def test_vggss_bad_box(tmp_path):
    path = tmp_path / "vggss.json"
    path.write_text(json.dumps([{"file": "a_000001", "bbox": [[0.1, 0.2, 0.5]]}]))
    with pytest.raises(EvalInputError, match="bbox must be a list of 4 numbers"):
        list(read_vggss(path, image_size=(224, 224)))


CLOTHO = (
    "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    'Distorted AM Radio noise.wav,"A radio dial, turned slowly.",Static crackles.,'
    "A radio is tuned.,Noise from a radio.,Someone tunes a radio.\n"
)


def test_clotho(tmp_path):
    path = tmp_path / "clotho_captions_evaluation.csv"
    path.write_text(CLOTHO)
    (item,) = read_clotho(path)
    assert item.id == item.sound == "Distorted AM Radio noise.wav"
    assert item.captions[0] == "A radio dial, turned slowly."
    assert len(item.captions) == 5


def test_clotho_errors(tmp_path):
    path = tmp_path / "clotho.csv"
    path.write_text(CLOTHO + "x.wav,a,b,,d,e\n")
    with pytest.raises(EvalInputError, match=r"clotho\.csv:3: empty file name or caption"):
        list(read_clotho(path))
    path.write_text("file_name,caption_1\nx.wav,a\n")
    with pytest.raises(EvalInputError, match=r"clotho\.csv:1: CSV header lacks column"):
        list(read_clotho(path))
