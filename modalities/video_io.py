"""Decoding F uniformly sampled frames of a video, with decord and a PyAV fallback.

Sampling: the clip's n frames are cut into F equal segments by index and the frame at the
centre of each segment is taken: index_i = floor((i + 0.5) * n / F). Each sampled frame thus
stands for 1/F of the clip, and frame i sits at fraction (i + 0.5) / F of it. A clip with
fewer than F frames repeats frames (the nearest one to each segment centre), so every video
yields exactly F frames and batches keep one shape; ``Media.times`` holds each sampled
frame's true time, so repeats are visible as equal times.

Times are in seconds from the first frame's presentation time; ``Media.duration`` is
n / (average frame rate), the same for both decoders.

GroundingGPT's sampling (``preprocess: groundinggpt``) is ``groundinggpt_frame_indices``,
and its decoder scales frames while decoding (``frame_size``): see those.
"""

from __future__ import annotations

import io
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

import av
import decord
import numpy as np
import torch

from modalities.base import Media
from modalities.errors import (
    CorruptMediaError,
    MediaTooLargeError,
    UnsupportedMediaError,
)
from modalities.io import MediaSource, local_path, read_bytes, source_name

logger = logging.getLogger(__name__)

# What PyAV and FFmpeg raise on a truncated or corrupt container besides FFmpegError. Caught
# only around the PyAV calls of ``_read_with_pyav`` (the decode boundary), where each one
# means "this file cannot be decoded", never around our own arithmetic.
_PYAV_DECODE_FAILURES = (av.FFmpegError, EOFError, ValueError, IndexError, RuntimeError, struct.error)


@dataclass
class DecodedFrames:
    """What a decoder returns: frames (F, H, W, 3) uint8, their times (F,) in s, clip facts."""

    frames: np.ndarray
    times: np.ndarray
    num_frames: int  # frames in the whole clip
    fps: float


def sample_indices(num_frames: int, num_samples: int) -> np.ndarray:
    """Centres of ``num_samples`` equal index segments of a ``num_frames`` clip: (F,) int64."""
    if num_frames < 1:
        raise ValueError(f"cannot sample from a clip of {num_frames} frames")
    return np.floor((np.arange(num_samples) + 0.5) * num_frames / num_samples).astype(np.int64)


def groundinggpt_frame_indices(num_frames: int, num_samples: int) -> np.ndarray:
    """GroundingGPT's frames: the *start* of each of F equal segments, and every frame of a
    clip shorter than F (no repeats: such a clip gives fewer than F frames).

    Source: ``video_llama/processors/video_processor.py::load_video`` with
    ``sampling="uniform"`` (called with ``n_frms=model.config.max_frame`` by
    ``lego/serve/cli.py`` and with ``n_frms=num_frame`` by ``lego/train/train.py``):
    ``n_frms = min(n_frms, vlen)``, indices ``np.arange(0, vlen, vlen / n_frms)`` truncated to
    int. That float arithmetic is kept (element i is ``i * (vlen / n_frms)``): it differs from
    ``floor(i * vlen / F)`` for some F that are not powers of two (F = 18: vlen = 294), never
    for F = 64. For some such F it also yields F + 1 indices (F = 7, vlen = 17), which the
    released model's F-row frame position embedding could not take; we keep the first F.
    """
    if num_frames < 1:
        raise ValueError(f"cannot sample from a clip of {num_frames} frames")
    count = min(num_samples, num_frames)
    return np.floor(np.arange(count) * (num_frames / count)).astype(np.int64)


FrameSampler = Callable[[int, int], np.ndarray]  # (frames in clip, frames wanted) -> indices


def read_video(
    source: MediaSource,
    num_samples: int,
    max_frame_pixels: int,
    sampler: FrameSampler = sample_indices,
    frame_size: tuple[int, int] | None = None,
) -> Media:
    """Decode ``num_samples`` frames of a video into ``Media`` (data (F, 3, H, W) uint8).

    decord reads local paths directly and other sources from an in-memory buffer; when it
    cannot open a file, PyAV tries (logged as a warning naming the file).

    ``sampler`` picks the frame indices (default: segment centres). ``frame_size`` (width,
    height) has the decoder scale each frame to that size, aspect ratio not kept, by FFmpeg's
    swscale on the decoded picture before its conversion to RGB: how GroundingGPT reads
    videos (``VideoReader(uri, height=224, width=224)``). decord and PyAV then give the same
    pixels (measured: 0 difference on an H.264 clip); ``Media.size`` is that size, and
    ``max_frame_pixels`` applies to it.

    Raises:
        MediaNotFoundError, CorruptMediaError (unreadable, 0 frames), UnsupportedMediaError
        (no video stream), MediaTooLargeError (frames over ``max_frame_pixels``).
    """
    name = source_name(source)
    path = local_path(source)
    raw = read_bytes(source) if path is None else b""  # read once: a file object cannot rewind
    if path is not None and os.path.getsize(path) == 0:
        raise CorruptMediaError(name, "file is empty (0 bytes)")

    def target():  # a fresh handle per decoder
        return path if path is not None else io.BytesIO(raw)

    scale = {"width": frame_size[0], "height": frame_size[1]} if frame_size else {}
    sampling = _Sampling(num_samples, max_frame_pixels, sampler, scale)
    try:
        reader = decord.VideoReader(target(), ctx=decord.cpu(0), num_threads=1, **scale)
    except (decord.DECORDError, RuntimeError) as e:
        logger.warning("decord cannot open %s (%s); decoding it with PyAV", name, _first_line(e))
        decoded = _read_with_pyav(target(), name, sampling)
    else:
        try:
            decoded = _read_with_decord(reader, name, sampling)
        except CorruptMediaError as e:  # decord opens some files it then decodes wrongly
            logger.warning("decord cannot decode %s (%s); decoding it with PyAV", name, e.reason)
            decoded = _read_with_pyav(target(), name, sampling)
    return _to_media(decoded, name)


@dataclass(frozen=True)
class _Sampling:
    """What to decode: how many frames, which (``sampler``), at what size (``scale``: the
    width/height keywords of decord's VideoReader and PyAV's to_ndarray, {} = as stored)."""

    num_samples: int
    max_pixels: int
    sampler: FrameSampler
    scale: dict[str, int]


def _to_media(decoded: DecodedFrames, name: str) -> Media:
    # (F, 3, H, W) as a view of the decoder's (F, H, W, 3) array: channels-last in memory,
    # which the transforms copy anyway, so no copy here.
    frames = torch.from_numpy(decoded.frames).permute(0, 3, 1, 2)
    height, width = frames.shape[-2:]
    return Media(
        data=frames,
        source=name,
        size=(int(width), int(height)),
        duration=decoded.num_frames / decoded.fps,
        times=torch.from_numpy(decoded.times.astype(np.float32)),
        meta={"num_frames": decoded.num_frames, "fps": decoded.fps},
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- decord ---------------------------------------------------------------------------------
def _read_with_decord(reader: decord.VideoReader, name: str, sampling: _Sampling) -> DecodedFrames:
    n = len(reader)
    if n < 1:
        raise CorruptMediaError(name, "video has 0 frames")
    fps = _checked_fps(reader.get_avg_fps(), name)
    try:
        _check_frame_size(reader[0].shape, name, sampling.max_pixels)  # one frame before F of them
        indices = sampling.sampler(n, sampling.num_samples)
        unique, inverse = np.unique(indices, return_inverse=True)  # decode each frame once
        frames = reader.get_batch(unique.tolist()).asnumpy()  # (U, H, W, 3)
        if len(unique) < len(indices):  # short clip: repeat frames (a copy, so only then)
            frames = frames[inverse]
        starts = reader.get_frame_timestamp(np.concatenate([[0], indices]).tolist())[:, 0]
    except (decord.DECORDError, RuntimeError) as e:
        raise CorruptMediaError(name, f"frames cannot be decoded: {_first_line(e)}") from e
    if frames.shape[-1] != 3:  # seen with decord 0.6 on 48-pixel-wide mpeg4: 4 channels
        raise CorruptMediaError(name, f"decord returned frames of shape {frames.shape[1:]}, not (H, W, 3)")
    return DecodedFrames(frames, starts[1:] - starts[0], n, fps)


# --- PyAV -----------------------------------------------------------------------------------
def _read_with_pyav(target, name: str, sampling: _Sampling) -> DecodedFrames:
    try:
        with av.open(target) as container:
            if not container.streams.video:
                raise UnsupportedMediaError(name, "no video stream in the file")
            stream = container.streams.video[0]
            codec = stream.codec_context
            # An mp4 cut inside its stream table (the moov box, written last by PyAV) opens
            # with a video stream that has no decoder: codec_context is None. Seen at 58-86 %
            # of the bytes of the synthetic world's mpeg4 and H.264 clips.
            if codec is None or codec.width < 1 or codec.height < 1:
                raise CorruptMediaError(name, "the video stream's header is incomplete (file cut short?)")
            _check_frame_size((sampling.scale.get("height", codec.height), sampling.scale.get("width", codec.width)),
                              name, sampling.max_pixels)
            fps = _checked_fps(float(stream.average_rate or stream.guessed_rate or 0), name)
            n = stream.frames or _count_packets(container, stream)
            decoded = _decode_sampled(container, stream, n, sampling, fps, name)
            if decoded is None:  # the header claimed more frames than the stream holds
                n = _count_frames(container, stream)
                decoded = _decode_sampled(container, stream, n, sampling, fps, name)
    except _PYAV_DECODE_FAILURES as e:
        raise CorruptMediaError(name, f"neither decord nor PyAV can read it: {_first_line(e)}") from e
    if decoded is None:
        raise CorruptMediaError(name, "frame count changes between two decodes")
    return decoded


def _count_packets(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """Frames in a stream whose header does not say: count its packets (no decoding).

    Called on a freshly opened container, so no seek: seeking a stream without packets fails.
    """
    return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _count_frames(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    container.seek(0)
    return sum(1 for _ in container.decode(stream))


def _decode_sampled(container, stream, n: int, sampling: _Sampling, fps: float, name: str) -> DecodedFrames | None:
    """Decode sequentially up to the last sampled index; None if the stream ends before it."""
    if n < 1:
        raise CorruptMediaError(name, "video has 0 frames")
    indices = sampling.sampler(n, sampling.num_samples)
    wanted, last = set(indices.tolist()), int(indices.max())
    frames: dict[int, np.ndarray] = {}  # index -> (H, W, 3) uint8
    times: dict[int, float] = {}  # index -> s from the first frame
    first_time = None
    container.seek(0)
    for i, frame in enumerate(container.decode(stream)):
        t = frame.time if frame.time is not None else i / fps
        first_time = t if first_time is None else first_time
        if i in wanted:
            frames[i] = frame.to_ndarray(format="rgb24", **sampling.scale)
            times[i] = t - first_time
        if i >= last:
            break
    if last not in frames:
        return None
    return DecodedFrames(
        np.stack([frames[i] for i in indices]), np.array([times[i] for i in indices]), n, fps
    )


def _check_frame_size(shape: tuple[int, ...], name: str, max_pixels: int) -> None:
    height, width = int(shape[0]), int(shape[1])
    if height * width > max_pixels:
        raise MediaTooLargeError(name, f"{width}x{height} frames exceed max_frame_pixels={max_pixels}")


def _checked_fps(fps: float, name: str) -> float:
    if not fps or fps <= 0 or not np.isfinite(fps):
        raise CorruptMediaError(name, f"video has no usable frame rate ({fps})")
    return float(fps)
