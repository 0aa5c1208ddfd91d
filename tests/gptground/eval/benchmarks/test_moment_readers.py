"""Charades-STA, DiDeMo and ActivityNet Captions readers on small files in their layouts."""

import json

import fsspec
import pytest

from gptground.eval.benchmarks import (
    read_activitynet_captions,
    read_charades_durations,
    read_charades_sta,
    read_didemo,
)
from gptground.eval.errors import EvalInputError
from gptground.grounding.types import Span

CHARADES = (
    "AO8RW 0.0 6.9##a person is putting a book on a shelf.\n"
    "AO8RW 2.5 9.8##person begins to play on a phone.\n"
    "Y6R7T 30.1 32.4##a person opens the door.\n"
)
CHARADES_CSV = (
    "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    'AO8RW,S1,Kitchen,6,7,Yes,"A person, then a book.",book;shelf,"x",c059 0.0 6.9,33.67\n'
    "Y6R7T,S2,Hallway,5,7,Yes,script,door,y,c006 30.1 32.4,31.00\n"
)


def test_charades_sta_with_durations(tmp_path):
    (tmp_path / "charades_sta_test.txt").write_text(CHARADES)
    (tmp_path / "Charades_v1_test.csv").write_text(CHARADES_CSV)
    durations = read_charades_durations(tmp_path / "Charades_v1_test.csv")
    assert durations == {"AO8RW": 33.67, "Y6R7T": 31.0}
    items = list(read_charades_sta(tmp_path / "charades_sta_test.txt", durations=durations))
    assert [item.id for item in items] == ["AO8RW_0", "AO8RW_1", "Y6R7T_0"]
    assert items[0].video == "AO8RW.mp4"
    assert items[0].query == "a person is putting a book on a shelf."
    assert items[0].spans == (Span(0.0, 6.9),)
    assert items[0].duration == 33.67
    # end 32.4 s runs past the 31.0 s video: clipped
    assert items[2].spans == (Span(30.1, 31.0),)


def test_charades_sta_from_fsspec_url():
    with fsspec.open("memory://bench/charades_sta_test.txt", "w") as handle:
        handle.write(CHARADES)
    items = list(read_charades_sta("memory://bench/charades_sta_test.txt"))
    assert len(items) == 3
    assert items[2].duration is None and items[2].spans == (Span(30.1, 32.4),)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("AO8RW 0.0 6.9 a person sits.", "expected '<video> <start> <end>##<sentence>'"),
        ("AO8RW 0.0##a person sits.", "expected '<video> <start> <end>##<sentence>'"),
        ("AO8RW 0.0 six##a person sits.", "expected a number, got 'six'"),
        ("AO8RW -1.0 6.0##a person sits.", "times must not be negative"),
    ],
)
def test_charades_sta_bad_line(tmp_path, line, message):
    path = tmp_path / "charades_sta_test.txt"
    path.write_text(CHARADES + line + "\n")
    with pytest.raises(EvalInputError, match=rf"charades_sta_test\.txt:4: {message}"):
        list(read_charades_sta(path))


def test_charades_sta_missing_duration(tmp_path):
    path = tmp_path / "charades_sta_test.txt"
    path.write_text(CHARADES)
    with pytest.raises(EvalInputError, match=r":3: video 'Y6R7T' has no duration"):
        list(read_charades_sta(path, durations={"AO8RW": 33.67}))


def test_charades_durations_bad_csv(tmp_path):
    path = tmp_path / "Charades_v1_test.csv"
    path.write_text("id,length\nAO8RW,long\n")
    with pytest.raises(EvalInputError, match=r"Charades_v1_test\.csv:2: expected a number"):
        read_charades_durations(path)
    path.write_text("id,duration\nAO8RW,3\n")
    with pytest.raises(EvalInputError, match=r"lacks column\(s\) \['length'\]"):
        read_charades_durations(path)


DIDEMO = [
    {
        "annotation_id": 11,
        "description": "the dog jumps into the pool ",
        "video": "12090392@N02_13482799053_87ef417396.mov",
        "times": [[2, 2], [2, 3], [2, 2], [1, 2]],
        "download_link": "https://example.invalid/x.mov",
        "num_segments": 6,
    },
    {
        "annotation_id": 12,
        "description": "the last seconds",
        "video": "short.mov",
        "times": [[5, 5]],
        "num_segments": 6,
    },
]


def test_didemo_segments_to_seconds(tmp_path):
    path = tmp_path / "test_data.json"
    path.write_text(json.dumps(DIDEMO))
    first, second = read_didemo(path, durations={"short.mov": 27.0})
    assert first.id == "11" and first.query == "the dog jumps into the pool"
    # [i, j] -> [5 i, 5 (j + 1)]: [2,2] -> [10,15], [2,3] -> [10,20], [1,2] -> [5,15]
    assert first.spans == (Span(10, 15), Span(10, 20), Span(10, 15), Span(5, 15))
    assert first.duration is None
    # [5, 5] -> [25, 30], clipped to the 27 s video -> [25, 27]
    assert second.spans == (Span(25, 27),)


@pytest.mark.parametrize("window", [[3, 1], [0, 6], [-1, 2], [1.0, 2], [1]])
def test_didemo_bad_window(tmp_path, window):
    path = tmp_path / "test_data.json"
    path.write_text(json.dumps([DIDEMO[0], dict(DIDEMO[1], times=[window])]))
    with pytest.raises(EvalInputError, match=r"\(record 1\): a time window must be \[i, j\]"):
        list(read_didemo(path))


def test_activitynet_captions(tmp_path):
    path = tmp_path / "val_1.json"
    path.write_text(
        json.dumps(
            {
                "v_uqiMw7tQ1Cc": {
                    "duration": 55.15,
                    "timestamps": [[0.28, 55.15], [13.79, 54.32]],
                    "sentences": [
                        " A weight lifting tutorial is given.",
                        "  The coach helps the guy.",
                    ],
                },
                "v_bXdq2zI1Ms0": {
                    "duration": 73.1,
                    "timestamps": [[70.0, 80.5]],
                    "sentences": ["Dog."],
                },
            }
        )
    )
    items = list(read_activitynet_captions(path))
    assert [item.id for item in items] == ["v_uqiMw7tQ1Cc_0", "v_uqiMw7tQ1Cc_1", "v_bXdq2zI1Ms0_0"]
    assert items[0].video == "v_uqiMw7tQ1Cc.mp4"
    assert items[0].query == "A weight lifting tutorial is given."
    assert items[1].spans == (Span(13.79, 54.32),) and items[1].duration == 55.15
    assert items[2].spans == (Span(70.0, 73.1),)  # 80.5 clipped to the 73.1 s duration


def test_activitynet_mismatched_lists(tmp_path):
    path = tmp_path / "val_1.json"
    path.write_text(json.dumps({"v_a": {"duration": 5, "timestamps": [[0, 1]], "sentences": []}}))
    with pytest.raises(EvalInputError, match=r"\(record 'v_a'\): 1 timestamps for 0 sentences"):
        list(read_activitynet_captions(path))
