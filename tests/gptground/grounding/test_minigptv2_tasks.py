"""MiniGPT-v2 task identifiers."""

import pytest

from gptground.grounding import TASK_IDENTIFIERS, add_task_identifier, strip_task_identifier


def test_known_identifiers():
    assert set(TASK_IDENTIFIERS) == {"vqa", "caption", "grounding", "refer", "detection", "identify"}


@pytest.mark.parametrize("task", TASK_IDENTIFIERS)
def test_add_then_strip(task):
    text = add_task_identifier("where is the cat?", task)
    assert text == f"[{task}] where is the cat?"
    assert strip_task_identifier(text) == (task, "where is the cat?")


def test_strip_leaves_text_without_identifier_alone():
    assert strip_task_identifier("[0.1, 0.2] is a list") == (None, "[0.1, 0.2] is a list")
    assert strip_task_identifier("say [refer] later") == (None, "say [refer] later")


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="unknown MiniGPT-v2 task"):
        add_task_identifier("hi", "segment")
