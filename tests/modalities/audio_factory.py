"""Audio files made on the spot for the audio modality's tests: tones, silence, bad files."""

from __future__ import annotations

import os

import av
import numpy as np
import soundfile as sf


def tone(
    freq_hz: float, seconds: float, sample_rate: int, channels: int = 1, amplitude: float = 0.5
) -> np.ndarray:
    """(N, channels) float32 sine wave, the same in every channel."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave = amplitude * np.sin(2 * np.pi * freq_hz * t)
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def write_soundfile(
    path: str | os.PathLike, samples: np.ndarray, sample_rate: int, subtype: str | None = None
) -> str:
    """Write (N, C) samples with libsndfile; the extension picks the format (.wav, .flac)."""
    sf.write(str(path), samples, sample_rate, subtype=subtype)
    return str(path)


def write_pyav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, codec: str) -> str:
    """Encode (N, C) float samples with FFmpeg, e.g. codec "aac" into .m4a or .mka."""
    layout = {1: "mono", 2: "stereo"}[samples.shape[1]]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=layout)
        planar = np.ascontiguousarray(samples.T.astype(np.float32))  # (C, N) for format fltp
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):  # flush the encoder
            container.mux(packet)
    return str(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def truncated_copy(src: str, dst: str | os.PathLike, keep: float = 0.5) -> str:
    """The first ``keep`` fraction of ``src``'s bytes, as a cut download would leave it."""
    with open(src, "rb") as f:
        data = f.read()
    return write_bytes(dst, data[: int(len(data) * keep)])
