"""Typed errors for media and checkpoints. Each names the file (or hub id) it is about."""

from __future__ import annotations


class MediaError(Exception):
    """A media file could not be turned into a tensor. ``path`` names the file."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MediaNotFoundError(MediaError, FileNotFoundError):
    """The media file does not exist."""


class UnsupportedMediaError(MediaError):
    """The file exists but is not a kind of media this modality reads (wrong extension or codec)."""


class CorruptMediaError(MediaError):
    """The file is empty, truncated or undecodable, or holds too little (0 frames, 0 samples)."""


class MediaTooLargeError(MediaError):
    """The file would decode to more pixels or samples than the configured limit."""


class CheckpointNotFoundError(FileNotFoundError):
    """A pretrained checkpoint is missing (offline, or a wrong path).

    Names both the path or hub id and the recipe key that sets it, so the fix is one override.
    """

    def __init__(self, location: str, recipe_key: str, detail: str = ""):
        self.location = location
        self.recipe_key = recipe_key
        msg = (
            f"checkpoint not found: {location!r} (set by recipe key `{recipe_key}`). "
            f"Download it and point `{recipe_key}=/path/to/it` at the local copy"
            ", or use a tiny build for a smoke run."
        )
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class CheckpointFormatError(ValueError):
    """A checkpoint exists but cannot be used: unsafe pickle, or keys/shapes that do not fit.

    Names the file or folder and the recipe key that sets it.
    """

    def __init__(self, location: str, recipe_key: str, detail: str):
        self.location = location
        self.recipe_key = recipe_key
        super().__init__(f"checkpoint {location!r} (set by recipe key `{recipe_key}`): {detail}")
