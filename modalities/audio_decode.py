"""Decode an audio file into one mono float32 waveform at a chosen sample rate.

libsndfile (through ``soundfile``) reads WAV, FLAC, OGG (Vorbis, Opus), MP3 and AIFF from
memory with no system dependency; PyAV (FFmpeg) reads the rest: M4A/AAC, WMA, the sound
track of a video. ``torchaudio.load`` is not used: from torchaudio 2.9 it needs torchcodec
and a system FFmpeg.

Every failure is a typed ``MediaError`` naming the file. The content decides how a file is
decoded; the extension only decides whether an undecodable file is reported as corrupt (it
claims to be audio) or as unsupported (it does not).
"""

from __future__ import annotations

import io
import os
import struct

import av
import numpy as np
import soundfile as sf
import torch
import torchaudio

from modalities.errors import CorruptMediaError, MediaTooLargeError, UnsupportedMediaError
from modalities.io import MediaSource, read_bytes, source_name

# What PyAV and FFmpeg raise on a truncated or corrupt container besides FFmpegError. Caught
# only around the PyAV decode of ``decode_audio`` (the decode boundary).
_PYAV_DECODE_FAILURES = (av.FFmpegError, EOFError, ValueError, IndexError, RuntimeError, struct.error)

# Extensions of files that hold sound (audio formats and video containers with a sound
# track). An undecodable file with one of these is corrupt; with any other, unsupported.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .m4a .aac .aif .aiff .au .caf .w64 .wma .mka "
    ".webm .mp4 .mov .mkv .avi".split()
)


def load_waveform(
    source: MediaSource, sample_rate: int, max_duration_s: float | None = None, channel: int | None = None
) -> tuple[torch.Tensor, float]:
    """Decode ``source``, mix it to mono (or take one channel) and resample it.

    Args:
        source: local path, fsspec URL or binary file object.
        sample_rate: output samples per second (16000 for ImageBind).
        max_duration_s: refuse files longer than this many seconds (None: no limit).
        channel: None: the average of all channels; k: channel k alone (GroundingGPT's
            ImageBind loader reads channel 0 of a stereo file, see ``AudioModality.load``).

    Returns:
        (waveform (N,) float32 at ``sample_rate``, duration of the file in seconds).

    Raises:
        MediaNotFoundError: no such file.
        CorruptMediaError: empty, truncated or undecodable file, no samples, NaN/inf samples.
        UnsupportedMediaError: not an audio file, or a container without a sound track.
        MediaTooLargeError: longer than ``max_duration_s``.
    """
    name = source_name(source)
    channels, native_rate = decode_audio(read_bytes(source), name, max_duration_s)
    duration_s = channels.shape[1] / native_rate
    if channel is None:
        mono = channels.mean(dim=0)  # (N,): the average of all channels, any channel count
    else:
        mono = channels[min(channel, channels.shape[0] - 1)]  # a mono file has only channel 0
    return resample(mono, native_rate, sample_rate), duration_s


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited (windowed-sinc) resampling of a (..., N) waveform; a no-op at equal rates."""
    if orig_rate == new_rate:
        return wave
    return torchaudio.functional.resample(wave, orig_freq=orig_rate, new_freq=new_rate)


def decode_audio(
    data: bytes, name: str, max_duration_s: float | None = None
) -> tuple[torch.Tensor, int]:
    """All channels of an encoded audio file: ((C, N) float32 in [-1, 1], sample rate in Hz).

    libsndfile is tried first (fast, exact for PCM); PyAV reads what it cannot.
    """
    try:
        channels, rate = _decode_soundfile(data, name, max_duration_s)
    except sf.LibsndfileError as sndfile_error:
        try:
            channels, rate = _decode_pyav(data, name, max_duration_s)
        except _PYAV_DECODE_FAILURES as ffmpeg_error:
            detail = getattr(ffmpeg_error, "strerror", None) or f"{type(ffmpeg_error).__name__}: {ffmpeg_error}"
            reason = (
                f"not decodable by libsndfile ({sndfile_error.error_string.rstrip('.')}) "
                f"nor FFmpeg ({detail})"
            )
            raise _undecodable(name, reason) from ffmpeg_error
    _check_samples(channels, name)
    return channels, rate


def _decode_soundfile(
    data: bytes, name: str, max_duration_s: float | None
) -> tuple[torch.Tensor, int]:
    with sf.SoundFile(io.BytesIO(data)) as f:
        _check_truncated_wav(f, name)
        _check_duration(f.frames / f.samplerate, max_duration_s, name)
        frames = f.read(dtype="float32", always_2d=True)  # (N, C)
        rate = f.samplerate
    return torch.from_numpy(np.ascontiguousarray(frames.T)), rate


def _check_truncated_wav(f: sf.SoundFile, name: str) -> None:
    """Refuse a WAV whose data chunk is shorter than its header says.

    libsndfile silently reads the samples that are there and notes the mismatch in its log
    as ``data : <declared> (should be <present>)``. A cut file would shift every timestamp
    computed as a fraction of its length, so it is an error, not a shorter clip.
    """
    for line in f.extra_info.splitlines():
        if line.startswith("data") and "(should be" in line:
            raise CorruptMediaError(
                name, f"truncated WAV: data chunk {line.split(':', 1)[1].strip()} bytes"
            )


def _decode_pyav(data: bytes, name: str, max_duration_s: float | None) -> tuple[torch.Tensor, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise UnsupportedMediaError(name, "has no audio stream")
        stream = container.streams.audio[0]
        # An mp4/m4a cut inside its stream table opens with an audio stream that has no
        # decoder (codec_context None; stream.rate then raises AttributeError).
        if stream.codec_context is None or not stream.codec_context.sample_rate:
            raise CorruptMediaError(name, "the audio stream's header is incomplete (file cut short?)")
        rate = stream.rate
        declared_s = _declared_seconds(stream, container)
        if declared_s is not None:
            _check_duration(declared_s, max_duration_s, name)
        channels = _decode_stream(container, stream, name, max_duration_s)
    if declared_s is not None:
        _check_not_short(channels.shape[1] / rate, declared_s, name)
    return channels, rate


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    name: str,
    max_duration_s: float | None,
) -> torch.Tensor:
    """(C, N) float32 of one audio stream, stopping as soon as it exceeds the limit."""
    # Planar float32 at the stream's own rate and layout: one (C, n) array per frame.
    resampler = av.AudioResampler(format="fltp")
    chunks: list[np.ndarray] = []
    num_samples = 0
    for frame in container.decode(stream):
        for converted in resampler.resample(frame):
            chunks.append(converted.to_ndarray())
            num_samples += converted.samples
        # Checked while decoding too: a header may declare no duration, or a wrong one.
        _check_duration(num_samples / stream.rate, max_duration_s, name)
    chunks.extend(c.to_ndarray() for c in resampler.resample(None))  # flush
    if not chunks:
        raise CorruptMediaError(name, "audio stream holds 0 samples")
    return torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32, copy=False))


def _declared_seconds(
    stream: av.audio.stream.AudioStream, container: av.container.InputContainer
) -> float | None:
    """Length the file's header declares, in seconds, or None if it declares none."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _check_not_short(decoded_s: float, declared_s: float, name: str) -> None:
    """Refuse a file that decodes to clearly less than its header declares (truncated).

    The tolerance (the larger of 0.1 s and 2 %) absorbs encoder priming and padding.
    """
    if declared_s - decoded_s > max(0.1, 0.02 * declared_s):
        raise CorruptMediaError(
            name, f"truncated: header declares {declared_s:.2f} s, only {decoded_s:.2f} s decode"
        )


def _check_duration(duration_s: float, max_duration_s: float | None, name: str) -> None:
    if max_duration_s is not None and duration_s > max_duration_s:
        raise MediaTooLargeError(
            name, f"{duration_s:.1f} s of audio exceeds the limit of {max_duration_s:.1f} s"
        )


def _check_samples(channels: torch.Tensor, name: str) -> None:
    if channels.shape[1] == 0:
        raise CorruptMediaError(name, "holds 0 audio samples")
    if not torch.isfinite(channels).all():
        raise CorruptMediaError(name, "holds NaN or infinite samples")


def _undecodable(name: str, reason: str) -> CorruptMediaError | UnsupportedMediaError:
    extension = os.path.splitext(name)[1].lower()
    if extension in AUDIO_EXTENSIONS:
        return CorruptMediaError(name, reason)
    return UnsupportedMediaError(
        name, f"not an audio file ({extension or 'no extension'}): {reason}"
    )
