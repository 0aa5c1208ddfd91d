"""The top-level package: the first names users reach for, imported lazily."""

import subprocess
import sys

import gptground

HEAVY = ("torch", "lightning", "transformers")


def _loaded_after(code: str) -> list[str]:
    """Which heavy modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own printed list


def test_import_gptground_imports_no_torch():
    assert _loaded_after("import gptground") == []
    assert _loaded_after("from gptground import Box, Span") == []  # the value types are light


def test_the_first_names_users_reach_for_are_exported():
    from gptground import Box, Grounder, Span, load_recipe
    from gptground.api import Grounder as api_grounder
    from gptground.config import load_recipe as config_load_recipe
    from gptground.grounding import Box as grounding_box
    from gptground.grounding import Span as grounding_span

    assert (Grounder, load_recipe, Box, Span) == (api_grounder, config_load_recipe, grounding_box, grounding_span)
    assert {"Grounder", "load_recipe", "Box", "Span"} <= set(gptground.__all__) <= set(dir(gptground))


def test_an_unknown_name_is_an_attribute_error():
    try:
        gptground.Grounderr  # noqa: B018
    except AttributeError as e:
        assert "Grounderr" in str(e)
    else:
        raise AssertionError("gptground.Grounderr did not raise")
