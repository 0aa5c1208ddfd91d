"""Names of the input pipelines a modality can run: how media files become model inputs.

``default``: this project's own transforms (image and video frames padded to a square with
CLIP's mean colour, frames at segment centres, audio mixed to mono, ...).

``groundinggpt``: the inputs the released GroundingGPT-7B was trained on and is served with
(``lzw-lzw/GroundingGPT``: ``lego/serve/cli.py``, ``lego/model/builder.py``,
``lego/train/train.py``), so that its weights see what they were trained on. Each modality
implements it as a second behaviour of its own transforms; the facts and their sources are
written next to the code that implements them (image.py, video.py, video_io.py, audio.py,
audio_decode.py, audio_features.py).

The recipe sets it once, as ``model.preprocess``; each modality's config receives it in its
``preprocess`` field (``None``: not set, which means ``default``), so ``modalities`` never
reads the recipe.
"""

from __future__ import annotations

DEFAULT = "default"
GROUNDINGGPT = "groundinggpt"
PREPROCESS_CHOICES = (DEFAULT, GROUNDINGGPT)


def check_preprocess(value: str | None, key: str) -> None:
    """Raise ValueError naming ``key`` unless ``value`` is None or a known pipeline name."""
    if value is not None and value not in PREPROCESS_CHOICES:
        raise ValueError(f"`{key}` must be one of {list(PREPROCESS_CHOICES)}, got {value!r}")
