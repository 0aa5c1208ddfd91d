"""The README example (docs_snippets/grounding_example.py) runs and prints what it claims."""

import runpy
from pathlib import Path

SNIPPET = Path(__file__).resolve().parents[3] / "docs_snippets" / "grounding_example.py"


def test_snippet_runs_and_prints_parsed_values(capsys):
    runpy.run_path(str(SNIPPET), run_name="__main__")
    out = capsys.readouterr().out
    assert "groundinggpt: The cat [0.100, 0.200, 0.500, 0.500]" in out
    assert "'A cat': boxes=[[64.0, 48.0, 320.0, 240.0]]" in out
    assert "repairs=swapped" in out
    assert "truncated output?" in out
