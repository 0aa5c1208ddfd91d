"""Spoken words from the ``espeak-ng`` command, for the audio world's spoken_word events.

espeak-ng is optional: :func:`espeak_available` tells whether it is on PATH, and the
generator leaves spoken words out (and says so in the manifest) when it is not.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess

import numpy as np
import soundfile as sf

ESPEAK = "espeak-ng"
_WORDS_PER_MINUTE = 110  # slow speech, so a word stretched to an event keeps its sound
_SILENCE = 0.02  # fraction of the peak below which leading/trailing samples are trimmed


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed for a word; the message names the word."""


def espeak_available() -> bool:
    """Whether ``espeak-ng`` is on PATH."""
    return shutil.which(ESPEAK) is not None


@functools.lru_cache(maxsize=64)
def word_waveform(word: str) -> tuple[np.ndarray, int]:
    """(float32 mono samples in [-1, 1] with silence trimmed, sample rate) of ``word`` spoken.

    Cached per process: espeak-ng's output for a word is the same every time.
    """
    if not espeak_available():
        raise SpeechError(f"cannot speak {word!r}: {ESPEAK} is not on PATH (apt-get install espeak-ng)")
    result = subprocess.run([ESPEAK, "--stdout", "-s", str(_WORDS_PER_MINUTE), word],
                            capture_output=True, check=False, timeout=30)
    if result.returncode != 0 or not result.stdout:
        raise SpeechError(f"{ESPEAK} failed for {word!r} (exit {result.returncode}): "
                          f"{result.stderr.decode(errors='replace').strip()}")
    samples, rate = sf.read(io.BytesIO(result.stdout), dtype="float32", always_2d=True)
    return _trim(samples.mean(axis=1)), int(rate)


def _trim(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) >= _SILENCE * np.abs(samples).max())
    if len(loud) == 0:
        raise SpeechError("espeak-ng produced only silence")
    return samples[loud[0]: loud[-1] + 1]
