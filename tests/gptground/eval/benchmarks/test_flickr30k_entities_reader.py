"""Flickr30K Entities reader on a small Sentences/ + Annotations/ tree."""

import pytest

from gptground.eval.benchmarks import read_flickr30k_entities
from gptground.eval.errors import EvalInputError
from gptground.grounding.types import Box

SENTENCES = (
    "[/EN#1/people Two young guys] with [/EN#2/bodyparts shaggy hair] look at "
    "[/EN#3/bodyparts their hands] while hanging out in [/EN#4/scene the yard] .\n"
    "[/EN#1/people Two young , White males] are outside near "
    "[/EN#5/other/notvisual many bushes] .\n"
)
ANNOTATION = """<annotation>
  <filename>1000092795.jpg</filename>
  <size><width>500</width><height>333</height><depth>3</depth></size>
  <object><name>1</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>100</xmax><ymax>200</ymax></bndbox></object>
  <object><name>1</name><bndbox><xmin>201</xmin><ymin>11</ymin><xmax>300</xmax><ymax>211</ymax></bndbox></object>
  <object><name>2</name><name>3</name><bndbox><xmin>51</xmin><ymin>61</ymin><xmax>71</xmax><ymax>81</ymax></bndbox></object>
  <object><name>4</name><nobndbox>0</nobndbox><scene>1</scene></object>
  <object><name>5</name><nobndbox>1</nobndbox><scene>0</scene></object>
</annotation>
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "Sentences").mkdir()
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Sentences" / "1000092795.txt").write_text(SENTENCES)
    (tmp_path / "Annotations" / "1000092795.xml").write_text(ANNOTATION)
    (tmp_path / "test.txt").write_text("1000092795\n")
    return tmp_path


def test_captions_phrases_and_boxes(root):
    first, second = read_flickr30k_entities(root, split_file=root / "test.txt")
    assert (first.id, first.image, first.image_size) == (
        "1000092795_0",
        "1000092795.jpg",
        (500, 333),
    )
    assert first.caption == (
        "Two young guys with shaggy hair look at their hands while hanging out in the yard ."
    )
    assert [p.text for p in first.phrases] == [
        "Two young guys",
        "shaggy hair",
        "their hands",
        "the yard",
    ]
    for item in (first, second):
        for phrase in item.phrases:
            assert item.caption[phrase.start : phrase.start + len(phrase.text)] == phrase.text
    # "Two young guys with " is 20 characters: "shaggy hair" starts at 20
    assert [p.start for p in first.phrases][:2] == [0, 20]
    men = first.phrases[0]
    # 1-based VOC indices minus 1 on every coordinate (the dataset's own utilities)
    assert men.boxes == (Box(0, 0, 99, 199), Box(200, 10, 299, 210))
    assert (men.entity_id, men.types) == ("1", ("people",))
    # one <object> naming two entities gives both the box
    assert first.phrases[1].boxes == first.phrases[2].boxes == (Box(50, 60, 70, 80),)
    assert first.phrases[3].boxes == ()  # scene: no box
    assert second.caption == "Two young , White males are outside near many bushes ."
    assert second.phrases[1].types == ("other", "notvisual")
    assert second.phrase_boxes()[1] == ("many bushes", ())


def test_image_ids_argument(root):
    assert len(list(read_flickr30k_entities(root, ["1000092795"]))) == 2
    with pytest.raises(ValueError, match="exactly one"):
        list(read_flickr30k_entities(root))


def test_malformed_markup_names_file_and_line(root):
    (root / "Sentences" / "1000092795.txt").write_text(
        SENTENCES + "[/EN#7/people A man without a closing bracket .\n"
    )
    with pytest.raises(EvalInputError, match=r"1000092795\.txt:3: malformed entity markup"):
        list(read_flickr30k_entities(root, ["1000092795"]))


def test_bad_xml(root):
    (root / "Annotations" / "1000092795.xml").write_text("<annotation><size>")
    with pytest.raises(EvalInputError, match=r"1000092795\.xml:1: invalid XML"):
        list(read_flickr30k_entities(root, ["1000092795"]))
    (root / "Annotations" / "1000092795.xml").write_text(
        ANNOTATION.replace("<xmin>1</xmin>", "<xmin>one</xmin>")
    )
    with pytest.raises(EvalInputError, match="<xmin> must hold an integer"):
        list(read_flickr30k_entities(root, ["1000092795"]))
