"""Audio rows for ``benchmarks/media.py``: media loading and frozen-encoder throughput.

    python benchmarks/media_audio.py            # prints the rows

``rows()`` returns ``(what, backend, items/s)`` tuples; one item is one sound file (W = 3
windows of 2 s). The encoder row runs the ImageBind-huge-sized audio branch with random
weights: on CUDA in bf16 with batches of 64 files, on CPU in fp32 one file at a time.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable

import av
import numpy as np
import soundfile as sf
import torch

from modalities.audio import AudioConfig, AudioModality
from modalities.imagebind_audio import ENCODER_SIZES, ImageBindAudioEncoder

Row = tuple[str, str, float]


def rows(seconds: float = 10.0, repeats: int = 20, device: str | None = None) -> list[Row]:
    """Throughput rows of the audio modality.

    Args:
        seconds: length of the synthetic test files.
        repeats: loads timed per file format (the encoder row times fewer on CPU).
        device: encoder device; default CUDA when available, else CPU.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    audio = AudioModality(AudioConfig.tiny(), d_model=8)  # load/transform do not use weights
    with tempfile.TemporaryDirectory() as folder:
        wav = _write_wav(os.path.join(folder, "clip.wav"), seconds)
        m4a = _write_m4a(os.path.join(folder, "clip.m4a"), seconds)
        load_rows = [
            (
                f"audio load+transform, {seconds:g} s 44.1 kHz stereo WAV",
                "soundfile+kaldi fbank",
                _rate(lambda: audio.transform(audio.load(wav), train=False), repeats),
            ),
            (
                f"audio load+transform, {seconds:g} s 44.1 kHz stereo AAC (.m4a)",
                "PyAV+kaldi fbank",
                _rate(lambda: audio.transform(audio.load(m4a), train=False), repeats),
            ),
        ]
        features = audio.transform(audio.load(wav), train=False)  # (3, 1, 128, 204)
    return load_rows + [_encoder_row(features, device)]


def _encoder_row(features: torch.Tensor, device: str) -> Row:
    """Files/s through the frozen ImageBind-huge audio branch (3 windows per file)."""
    encoder = ImageBindAudioEncoder(ENCODER_SIZES["huge"]).eval().to(device)
    on_gpu = device.startswith("cuda")
    batch = features.expand(64 if on_gpu else 1, *features.shape).to(device)
    dtype = torch.bfloat16 if on_gpu else torch.float32

    def step() -> None:
        with torch.no_grad(), torch.autocast(device.split(":")[0], dtype=dtype, enabled=on_gpu):
            encoder(batch)
        if on_gpu:
            torch.cuda.synchronize(device)

    files_per_s = _rate(step, 20 if on_gpu else 2) * batch.shape[0]
    precision = "bf16 autocast" if on_gpu else "fp32"
    return (
        "ImageBind-huge audio encoder, 3 windows/file",
        f"torch {device} {precision}",
        files_per_s,
    )


def _rate(fn: Callable[[], object], repeats: int) -> float:
    """Calls per second of ``fn``, over ``repeats`` calls after one untimed warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return repeats / (time.perf_counter() - start)


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([left, np.roll(left, 100)], axis=1).astype(np.float32)  # (N, 2)


def _write_wav(path: str, seconds: float) -> str:
    sf.write(path, _tone(seconds, 44100), 44100, subtype="PCM_16")
    return path


def _write_m4a(path: str, seconds: float) -> str:
    with av.open(path, mode="w") as container:
        stream = container.add_stream("aac", rate=44100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(_tone(seconds, 44100).T), format="fltp", layout="stereo"
        )
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


if __name__ == "__main__":
    torch.set_num_threads(min(os.cpu_count() or 1, 16))
    for what, backend, rate in rows():
        print(f"{what:<60} {backend:<28} {rate:10.1f} items/s")
