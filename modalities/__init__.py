"""Per-modality media loading, frozen encoders and trainable adapters.

Importing this package registers the built-in modalities. This package never imports
``gptground``: the dependency runs one way only.
"""

from modalities.base import (
    Media,
    Modality,
    build_modality,
    get_modality_class,
    register_modality,
    registered_modalities,
)
from modalities.errors import (
    CheckpointFormatError,
    CheckpointNotFoundError,
    CorruptMediaError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    UnsupportedMediaError,
)

__all__ = [
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "CorruptMediaError",
    "Media",
    "MediaError",
    "MediaNotFoundError",
    "MediaTooLargeError",
    "Modality",
    "UnsupportedMediaError",
    "build_modality",
    "get_modality_class",
    "register_modality",
    "registered_modalities",
]

# Importing the built-in modalities registers them; a new modality adds its line here.
from modalities import audio, image, video  # noqa: E402,F401
