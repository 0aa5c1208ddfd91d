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
    CheckpointNotFoundError,
    CorruptMediaError,
    MediaError,
    MediaNotFoundError,
    MediaTooLargeError,
    UnsupportedMediaError,
)

__all__ = [
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

from modalities import image, video  # noqa: E402,F401  (registers the "image" and "video" modalities)
from modalities import audio  # noqa: E402,F401  (registers the "audio" modality)
