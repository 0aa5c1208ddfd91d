"""``score_file`` and the ``score`` command on predictions files, metrics computed by hand."""

import argparse
import json

import pytest

from gptground.eval.errors import EvalInputError
from gptground.eval.score import add_score_arguments, run_score, score_file

REC_LINES = [
    # 640 x 480, S = 640, dy = 80: [0.100, 0.225, 0.500, 0.325] -> [64, 64, 320, 128]: IoU 1
    {
        "id": "r1",
        "prediction": "It is at [0.100, 0.225, 0.500, 0.325].",
        "answer": [[64, 64, 320, 128]],
        "image_size": [640, 480],
    },
    # truncated: parse failure, wrong
    {
        "id": "r2",
        "prediction": "[0.100, 0.225, 0.500",
        "answer": [[64, 64, 320, 128]],
        "image_size": [640, 480],
    },
    # no box: parse failure, wrong
    {
        "id": "r3",
        "prediction": "I cannot see it.",
        "answer": [[64, 64, 320, 128]],
        "image_size": [640, 480],
    },
    # first box [384, 304, 448, 368] misses; the second would hit but only the first counts
    {
        "id": "r4",
        "prediction": "[0.600, 0.600, 0.700, 0.700] [0.100, 0.225, 0.500, 0.325]",
        "answer": [[64, 64, 320, 128]],
        "image_size": [640, 480],
    },
    # MiniGPT-v2 line, bin centres [67.2, 98.4, 323.2, 338.4]; best of two truths is
    # [64, 96, 320, 336]: overlap 252.8 x 237.6 = 60065.28;
    # union 2 * 61440 - 60065.28 = 62814.72: IoU 0.956 (vs the first truth: under 0.5)
    {
        "id": "r5",
        "prediction": "<p>the cat</p> {<10><20><50><70>}",
        "format": "minigptv2",
        "answer": [[64, 64, 320, 128], [64, 96, 320, 336]],
        "image_size": [640, 480],
    },
    # y2 = 0.475 * 640 - 80 = 224: 256 x 160 inside 256 x 320: IoU exactly 0.5: a hit
    {
        "id": "r6",
        "prediction": "[0.100, 0.225, 0.500, 0.475]",
        "answer": [[64, 64, 320, 384]],
        "image_size": [640, 480],
    },
]

TVG_LINES = [
    # {0.25,0.61} of 30 s = [7.5, 18.3]: IoU 1
    {
        "id": "q1",
        "prediction": "The dog turns in {0.25,0.61}.",
        "answer": [[7.5, 18.3]],
        "duration": 30.0,
    },
    # reversed pair, space after the comma: swapped: IoU 1
    {"id": "q2", "prediction": "{0.61, 0.25}", "answer": [[7.5, 18.3]], "duration": 30.0},
    # unparseable: IoU 0
    {"id": "q3", "prediction": "I don't know.", "answer": [[7.5, 18.3]], "duration": 30.0},
    # VTimeLLM frame indices of 100: 5/100 * 30 = 1.5, 43/100 * 30 = 12.9: IoU 1
    {
        "id": "q4",
        "prediction": "from 05 to 43",
        "format": "vtimellm",
        "answer": [[1.5, 12.9]],
        "duration": 30.0,
    },
    # [0, 6] vs best of [20, 30] (0) and [0, 10] (6/10): IoU 0.6
    {"id": "q5", "prediction": "{0.00,0.20}", "answer": [[20, 30], [0, 10]], "duration": 30.0},
    # [3, 9] vs [6, 12]: overlap 3, union 9: IoU 1/3
    {"id": "q6", "prediction": "{0.10,0.30}", "answer": [[6, 12]], "duration": 30.0},
]


def write_jsonl(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_rec_metrics(tmp_path):
    path = write_jsonl(tmp_path / "rec.jsonl", REC_LINES)
    # hits r1, r5, r6 of 6 expressions; failures r2, r3
    assert score_file(path, "rec") == {"acc@0.5": 0.5, "n": 6, "parse_failures": 2, "media_errors": 0}


def test_tvg_metrics(tmp_path):
    path = write_jsonl(tmp_path / "tvg.jsonl", TVG_LINES)
    result = score_file(path, "tvg")
    # IoUs 1, 1, 0, 1, 0.6, 1/3
    assert result["r1@0.3"] == pytest.approx(5 / 6)
    assert result["r1@0.5"] == pytest.approx(4 / 6)
    assert result["r1@0.7"] == pytest.approx(3 / 6)
    # (1 + 1 + 0 + 1 + 0.6 + 1/3) / 6 = 3.9333 / 6 = 0.65556
    assert result["miou"] == pytest.approx((3.6 + 1 / 3) / 6)
    assert (result["n"], result["parse_failures"]) == (6, 1)


def test_format_override_scores_another_models_output(tmp_path):
    lines = [
        {
            "id": "a",
            "prediction": "from 7.5 to 18.3 seconds",
            "format": "groundinggpt",
            "answer": [[7.5, 18.3]],
            "duration": 30.0,
        },
        {"id": "b", "prediction": "from 0.0 to 3.0 seconds", "answer": [[0, 6]], "duration": 30.0},
    ]
    path = write_jsonl(tmp_path / "seconds.jsonl", lines)
    # read as GroundingGPT's {t1,t2}: nothing parses
    assert score_file(path, "tvg")["parse_failures"] == 2
    # read as seconds: IoU 1 and 3/6 = 0.5
    result = score_file(path, "tvg", fmt="seconds")
    assert result["parse_failures"] == 0
    assert result["miou"] == pytest.approx(0.75)
    assert result["r1@0.5"] == 1.0 and result["r1@0.7"] == 0.5


def test_writes_metrics_json(tmp_path):
    path = write_jsonl(tmp_path / "rec.jsonl", REC_LINES)
    out = tmp_path / "run" / "metrics" / "rec.json"
    metrics = score_file(path, "rec", out=out)
    assert json.loads(out.read_text()) == metrics


GOOD_REC = {
    "id": "ok",
    "prediction": "[0.1, 0.2, 0.3, 0.4]",
    "answer": [[0, 0, 1, 1]],
    "image_size": [4, 4],
}
GOOD_TVG = {"id": "ok", "prediction": "{0.1,0.2}", "answer": [[0, 1]], "duration": 10}


@pytest.mark.parametrize(
    ("task", "bad", "message"),
    [
        ("rec", "{not json", r":2: invalid JSON"),
        ("rec", {**GOOD_REC, "id": "x", "prediction": None}, r":2: 'prediction' must be a string"),
        (
            "rec",
            {"id": "x", "answer": [[0, 0, 1, 1]], "image_size": [4, 4]},
            r":2: missing key 'prediction'",
        ),
        ("rec", {**GOOD_REC, "id": "x", "image_size": None}, r":2: image_size \[width, height\]"),
        (
            "rec",
            {k: v for k, v in GOOD_REC.items() if k != "image_size"} | {"id": "x"},
            r":2: missing key 'image_size'",
        ),
        ("rec", {**GOOD_REC, "id": "x", "image_size": [0, 4]}, r":2: image_size must be positive"),
        (
            "rec",
            {**GOOD_REC, "id": "x", "answer": [[0, 0, 1]]},
            r":2: an answer box \[x1, y1, x2, y2\] must be a list of 4 numbers",
        ),
        ("rec", {**GOOD_REC, "id": "x", "answer": []}, r":2: 'answer' must be a non-empty list"),
        ("rec", {**GOOD_REC, "id": True}, r":2: 'id' must be a string or an integer"),
        ("rec", {**GOOD_REC, "id": "x", "format": 3}, r":2: 'format' must be a format name"),
        ("rec", GOOD_REC, r":2: duplicate id 'ok' \(first on line 1\)"),
        ("tvg", {**GOOD_TVG, "id": "x", "duration": "30"}, r":2: duration must be a number"),
        ("tvg", {**GOOD_TVG, "id": "x", "duration": 0}, r":2: duration must be a positive"),
        (
            "tvg",
            {**GOOD_TVG, "id": "x", "answer": [[1, 2, 3, 4]]},
            r":2: an answer span \[start, end\] must be a list of 2 numbers",
        ),
        (
            "tvg",
            {**GOOD_TVG, "id": "x", "format": "nope"},
            r":2: 'format': unknown grounding format 'nope'",
        ),
        (
            "tvg",
            {**GOOD_TVG, "id": "x", "format": "shikra"},
            r":2: 'format': format 'shikra' has no notation for time spans",
        ),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, task, bad, message):
    path = tmp_path / "preds.jsonl"
    good = GOOD_REC if task == "rec" else GOOD_TVG
    bad_line = bad if isinstance(bad, str) else json.dumps(bad)
    path.write_text(json.dumps(good) + "\n" + bad_line + "\n")
    with pytest.raises(EvalInputError, match=rf"preds\.jsonl{message}"):
        score_file(path, task)


def test_bad_override_and_task(tmp_path):
    path = write_jsonl(tmp_path / "preds.jsonl", [GOOD_TVG])
    with pytest.raises(EvalInputError, match=r"preds\.jsonl: --format: unknown grounding format"):
        score_file(path, "tvg", fmt="nope")
    with pytest.raises(EvalInputError, match="format 'seconds' has no notation for boxes"):
        score_file(write_jsonl(tmp_path / "r.jsonl", [GOOD_REC]), "rec", fmt="seconds")
    with pytest.raises(ValueError, match="task must be one of"):
        score_file(path, "caption")


def test_empty_file(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text("\n")
    with pytest.raises(EvalInputError, match="holds no predictions"):
        score_file(path, "rec")


def test_command(tmp_path, capsys):
    parser = add_score_arguments(argparse.ArgumentParser())
    path = write_jsonl(tmp_path / "rec.jsonl", REC_LINES)
    out = tmp_path / "metrics.json"
    args = parser.parse_args([str(path), "--task", "rec", "--out", str(out)])
    assert run_score(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text()) == {"acc@0.5": 0.5, "n": 6, "parse_failures": 2, "media_errors": 0}

    (tmp_path / "bad.jsonl").write_text("{oops\n")
    assert run_score(parser.parse_args([str(tmp_path / "bad.jsonl"), "--task", "tvg"])) == 2
    assert "bad.jsonl:1: invalid JSON" in capsys.readouterr().err


def test_command_requires_task(tmp_path):
    parser = add_score_arguments(argparse.ArgumentParser())
    with pytest.raises(SystemExit):
        parser.parse_args([str(tmp_path / "x.jsonl")])
