"""``model.init_from``: a model folder path, a run name (``stage1``) or ``latest``.

A run writes its trained model folder to ``<run.output_dir>/<run.name>/version_<k>/model``;
a restarted stage writes ``version_<k+1>``, so later stages name the run, not the version:

* a path to an existing folder, or any value with a ``/``: that folder (as before);
* ``latest``: the newest finished model folder of any run under ``run.output_dir``;
* any other name: the newest finished model folder of the run of that name.

"Finished" = the folder holds its ``config.yaml`` and its weights (model folders are renamed
into place whole, so a crashed save leaves none). "Newest" = the most recently written
weights (ties: the higher version). Resolved once, before the model is built; the run's
saved recipe then records the folder that was used.
"""

from __future__ import annotations

import os
from pathlib import Path

from gptground.config.errors import RecipeError

LATEST = "latest"
KEY = "model.init_from"
MODEL_DIR = "model"  # the model folder inside a run's version folder
_CONFIG = "config.yaml"
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def resolve_init_from(value: str | None, output_dir: str) -> str | None:
    """The model folder ``value`` names; None stays None.

    Raises:
        RecipeError: a run name or ``latest`` with no finished model folder, listing the
            finished folders that do exist under ``output_dir``.
    """
    if not value or os.path.isdir(value) or "/" in value or value.startswith((".", "~")):
        return value
    run = None if value == LATEST else value
    found = finished_model_folders(output_dir, run)
    if found:
        return str(found[-1])
    existing = [str(p) for p in finished_model_folders(output_dir, None)]
    wanted = f"any run under {output_dir!r}" if run is None else f"run {run!r} ({output_dir}/{run}/version_*/model)"
    listing = "\n  ".join(existing) if existing else "(none)"
    raise RecipeError(
        f"`{KEY}`={value!r}: model folder not found: no finished one of {wanted}; "
        f"finished model folders there:\n  {listing}"
    )


def finished_model_folders(output_dir: str, run: str | None) -> list[Path]:
    """Finished ``<output_dir>/<run>/version_*/model`` folders (any run if None), oldest first."""
    pattern = f"{run}/version_*/{MODEL_DIR}" if run else f"*/version_*/{MODEL_DIR}"
    folders = [p for p in Path(output_dir).glob(pattern) if _weights(p) is not None]
    return sorted(folders, key=lambda p: (_weights(p).stat().st_mtime_ns, _version(p)))


def _weights(folder: Path) -> Path | None:
    if not (folder / _CONFIG).is_file():
        return None
    return next((folder / w for w in _WEIGHTS if (folder / w).is_file()), None)


def _version(folder: Path) -> int:
    suffix = folder.parent.name.removeprefix("version_")
    return int(suffix) if suffix.isdigit() else -1
