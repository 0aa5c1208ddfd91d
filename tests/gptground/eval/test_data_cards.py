"""Every data card parses: Hugging Face YAML front matter with the required keys, the
required sections with content, and a reader that exists for each benchmark."""

import importlib
import re
from pathlib import Path

import pytest
import yaml

CARDS = Path(__file__).resolve().parents[3] / "data_cards"
BENCHMARKS = [
    "refcoco",
    "refcoco_plus",
    "refcocog",
    "flickr30k_entities",
    "charades_sta",
    "didemo",
    "activitynet_captions",
    "vggss",
    "clotho",
]
TRAINING = ["llava_pretrain", "valley", "wavcaps", "visual_genome", "llava_instruct", "synthetic_world"]
REQUIRED_KEYS = ("pretty_name", "license", "language", "task_categories")
SECTIONS = (
    "Task",
    "Metric",
    "Box and time conventions",
    "Where to get it",
    "How to convert it",
    "Licence",
)


def split_card(text):
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.DOTALL)
    assert match, "the card must start with YAML front matter between '---' lines"
    return yaml.safe_load(match.group(1)), match.group(2)


def sections(body):
    """Heading -> text of every '## ' section."""
    parts = re.split(r"^## (.+)$", body, flags=re.MULTILINE)
    return {
        heading.strip(): text.strip()
        for heading, text in zip(parts[1::2], parts[2::2], strict=True)
    }


@pytest.mark.parametrize("name", BENCHMARKS + TRAINING)
def test_card(name):
    meta, body = split_card((CARDS / f"{name}.md").read_text(encoding="utf-8"))
    for key in REQUIRED_KEYS:
        assert meta.get(key), f"{name}.md: front matter lacks {key!r}"
    assert isinstance(meta["license"], str)
    assert "en" in meta["language"]
    assert all(isinstance(task, str) for task in meta["task_categories"])
    found = sections(body)
    for heading in SECTIONS:
        assert found.get(heading), f"{name}.md: missing or empty section '## {heading}'"
    expected_role = "benchmark" if name in BENCHMARKS else "training"
    assert expected_role in meta.get("gptground_role", "")  # the synthetic world is both


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_card_names_a_real_reader(name):
    meta, body = split_card((CARDS / f"{name}.md").read_text(encoding="utf-8"))
    module_name, _, function = meta["gptground_reader"].rpartition(".")
    assert callable(getattr(importlib.import_module(module_name), function))
    assert function in body, f"{name}.md should show how to call {function}"


def test_no_card_is_left_out_of_the_lists():
    assert sorted(p.stem for p in CARDS.glob("*.md")) == sorted(BENCHMARKS + TRAINING)


def test_split_card_rejects_a_card_without_front_matter():
    with pytest.raises(AssertionError, match="front matter"):
        split_card("# Title\n\n## Task\n")
