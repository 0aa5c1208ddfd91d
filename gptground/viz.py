"""Pictures of grounding answers, drawn with PIL alone.

- :func:`box_picture`: predicted boxes (red) and true boxes (green) on the image, labelled.
  Small images are enlarged by a whole factor first (nearest neighbour, so pixels stay
  sharp) until the shorter side reaches ``min_side``; boxes are scaled with them.
- :func:`timeline_picture`: predicted and true spans as bars over a time axis in seconds,
  under a strip of keyframes (video) or a waveform (audio).
- :func:`video_timeline` / :func:`audio_timeline`: the same, reading keyframes or the
  waveform from a file.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from gptground.grounding import Box, Span
from modalities.audio_decode import load_waveform
from modalities.io import read_bytes
from modalities.video_io import read_video

PREDICTED = (220, 50, 47)  # red
TRUE = (38, 160, 90)  # green
INK = (40, 40, 40)
STRIP_BACKGROUND = (235, 235, 235)

LABEL_WIDTH = 90  # px left of the time axis, for row names
RIGHT_MARGIN = 24
TITLE_HEIGHT = 26
STRIP_HEIGHT = 96
BAR_HEIGHT = 24
ROW_GAP = 8
AXIS_HEIGHT = 30
WAVEFORM_RATE = 16_000  # Hz: plenty for a strip a few hundred pixels wide
MAX_FRAME_PIXELS = 40_000_000  # the video modality's default limit

ImageSource = str | os.PathLike | Image.Image
Keyframe = tuple[float, Image.Image]  # (time in s, frame)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def load_rgb(image: ImageSource) -> Image.Image:
    """An RGB copy of an image file (path or URL, EXIF orientation applied) or PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    with Image.open(io.BytesIO(read_bytes(image))) as opened:
        return ImageOps.exif_transpose(opened).convert("RGB")


# --- boxes -----------------------------------------------------------------------------------
def box_picture(
    image: ImageSource,
    predicted: Sequence[Box],
    truth: Sequence[Box] = (),
    labels: Sequence[str] | None = None,
    min_side: int = 256,
) -> Image.Image:
    """The image with predicted boxes (red) and true boxes (green).

    Args:
        image: the original image (boxes are in its pixels).
        predicted: predicted boxes, pixels.
        truth: ground-truth boxes, pixels.
        labels: one label per predicted box (default "predicted").
        min_side: enlarge by the smallest whole factor that makes the shorter side at least
            this many pixels (1 = never enlarge).

    Returns:
        An RGB image of the original size times that factor.
    """
    picture = load_rgb(image)
    scale = max(1, math.ceil(min_side / min(picture.size)))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 150))
    font = _font(max(11, min(picture.size) // 20))
    for box in truth:
        _labelled_box(draw, picture.size, box, scale, TRUE, "true", line, font)
    for i, box in enumerate(predicted):
        _labelled_box(draw, picture.size, box, scale, PREDICTED, labels[i] if labels else "predicted", line, font)
    return picture


def _labelled_box(draw: ImageDraw.ImageDraw, size, box: Box, scale: int, colour, label: str, line: int, font) -> None:
    width, height = size
    x1, x2 = sorted((box.x1 * scale, box.x2 * scale))
    y1, y2 = sorted((box.y1 * scale, box.y2 * scale))
    x1, x2 = min(max(x1, 0), width - 1), min(max(x2, 0), width - 1)  # boxes in the padding are cut
    y1, y2 = min(max(y1, 0), height - 1), min(max(y2, 0), height - 1)
    draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    text_w, text_h = right - left + 4, bottom - top + 4
    ty = y1 - text_h if y1 >= text_h else y1  # above the box, or inside it at the top edge
    tx = min(x1, max(0, width - text_w))
    draw.rectangle((tx, ty, tx + text_w, ty + text_h), fill=colour)
    draw.text((tx + 2 - left, ty + 2 - top), label, fill=(255, 255, 255), font=font)


# --- time ------------------------------------------------------------------------------------
def timeline_picture(
    duration: float,
    predicted: Sequence[Span],
    truth: Sequence[Span] = (),
    keyframes: Sequence[Keyframe] = (),
    waveform: np.ndarray | torch.Tensor | None = None,
    width: int = 800,
    title: str | None = None,
) -> Image.Image:
    """Spans as bars over a time axis, under keyframes or a waveform.

    Args:
        duration: clip length in seconds (the axis runs from 0 to it).
        predicted: predicted spans, seconds (a row in red).
        truth: ground-truth spans, seconds (a row in green, drawn when given).
        keyframes: (time s, frame) pairs, each drawn centred over its time.
        waveform: (N,) samples spread evenly over ``duration``.
        width: picture width in pixels.
        title: a line of text on top (e.g. the question).

    Returns:
        An RGB image ``width`` pixels wide; its height follows from the rows drawn.
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive seconds, got {duration}")
    if width < LABEL_WIDTH + RIGHT_MARGIN + 100:
        raise ValueError(f"width must be at least {LABEL_WIDTH + RIGHT_MARGIN + 100} px, got {width}")
    has_strip = bool(keyframes) or waveform is not None
    rows = [("predicted", predicted, PREDICTED)] + ([("true", truth, TRUE)] if truth else [])
    height = (TITLE_HEIGHT if title else 0) + (STRIP_HEIGHT + ROW_GAP if has_strip else 0)
    height += len(rows) * (BAR_HEIGHT + ROW_GAP) + AXIS_HEIGHT + ROW_GAP
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    axis = _Axis(duration, LABEL_WIDTH, width - RIGHT_MARGIN)
    y = ROW_GAP // 2
    if title:
        draw.text((8, y), title, fill=INK, font=_font(14))
        y += TITLE_HEIGHT
    if has_strip:
        draw.rectangle((axis.left, y, axis.right, y + STRIP_HEIGHT), fill=STRIP_BACKGROUND)
        if keyframes:
            _draw_keyframes(picture, keyframes, axis, y)
        else:
            _draw_waveform(draw, np.asarray(waveform, dtype=np.float32).reshape(-1), axis, y)
        y += STRIP_HEIGHT + ROW_GAP
    for name, spans, colour in rows:
        _draw_bar_row(draw, name, spans, colour, axis, y)
        y += BAR_HEIGHT + ROW_GAP
    _draw_axis(draw, axis, y)
    return picture


class _Axis:
    """Maps seconds to x pixels between ``left`` and ``right``."""

    def __init__(self, duration: float, left: int, right: int):
        self.duration, self.left, self.right = duration, left, right

    def x(self, seconds: float) -> float:
        seconds = min(max(seconds, 0.0), self.duration)
        return self.left + seconds / self.duration * (self.right - self.left)


def _draw_keyframes(picture: Image.Image, keyframes: Sequence[Keyframe], axis: _Axis, top: int) -> None:
    slot = (axis.right - axis.left) / len(keyframes)  # px each frame may take
    for seconds, frame in keyframes:
        thumb = frame.convert("RGB")
        thumb.thumbnail((max(1, int(slot) - 4), STRIP_HEIGHT - 4), Image.Resampling.BILINEAR)
        centre = min(max(axis.x(seconds), axis.left + thumb.width / 2), axis.right - thumb.width / 2)
        picture.paste(thumb, (int(centre - thumb.width / 2), top + (STRIP_HEIGHT - thumb.height) // 2))


def _draw_waveform(draw: ImageDraw.ImageDraw, samples: np.ndarray, axis: _Axis, top: int) -> None:
    columns = int(axis.right - axis.left)
    if samples.size == 0:
        return
    peak = float(np.abs(samples).max()) or 1.0
    middle, half = top + STRIP_HEIGHT / 2, STRIP_HEIGHT / 2 - 4
    edges = np.linspace(0, samples.size, columns + 1).astype(int)
    for col in range(columns):
        chunk = samples[edges[col] : max(edges[col + 1], edges[col] + 1)]
        low, high = float(chunk.min()) / peak, float(chunk.max()) / peak
        x = axis.left + col
        draw.line((x, middle - high * half, x, middle - low * half), fill=INK)


def _draw_bar_row(draw: ImageDraw.ImageDraw, name: str, spans: Sequence[Span], colour, axis: _Axis, top: int) -> None:
    font = _font(12)
    draw.text((8, top + 5), name, fill=colour, font=font)
    draw.line((axis.left, top + BAR_HEIGHT / 2, axis.right, top + BAR_HEIGHT / 2), fill=STRIP_BACKGROUND)
    for span in spans:
        start, end = sorted((span.start, span.end))
        x1, x2 = axis.x(start), max(axis.x(end), axis.x(start) + 2)  # a zero-length span stays visible
        draw.rectangle((x1, top, x2, top + BAR_HEIGHT), fill=colour)
        label = f"{start:.2f}-{end:.2f} s"
        text_w = draw.textlength(label, font=font)
        inside = x2 - x1 > text_w + 6
        tx = x1 + 3 if inside else min(x2 + 4, axis.right - text_w)
        draw.text((tx, top + 5), label, fill=(255, 255, 255) if inside else colour, font=font)


def _tick_step(duration: float) -> float:
    """A 1, 2 or 5 times a power of ten step giving about 4-10 ticks."""
    rough = duration / 8
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def _draw_axis(draw: ImageDraw.ImageDraw, axis: _Axis, top: int) -> None:
    font = _font(11)
    draw.line((axis.left, top, axis.right, top), fill=INK, width=1)
    step = _tick_step(axis.duration)
    for k in range(int(axis.duration / step + 1e-9) + 1):
        seconds = k * step
        x = axis.x(seconds)
        draw.line((x, top, x, top + 5), fill=INK)
        label = f"{seconds:g} s"
        draw.text((x - draw.textlength(label, font=font) / 2, top + 8), label, fill=INK, font=font)


# --- from files ------------------------------------------------------------------------------
def video_timeline(
    video: str | os.PathLike,
    predicted: Sequence[Span],
    truth: Sequence[Span] = (),
    num_keyframes: int = 6,
    **options,
) -> Image.Image:
    """:func:`timeline_picture` of a video file with ``num_keyframes`` evenly sampled frames."""
    media = read_video(os.fspath(video), num_keyframes, MAX_FRAME_PIXELS)
    frames = media.data.permute(0, 2, 3, 1).contiguous().numpy()  # (F, H, W, 3) uint8
    keyframes = [(float(t), Image.fromarray(f)) for t, f in zip(media.times.tolist(), frames)]
    return timeline_picture(media.duration, predicted, truth, keyframes=keyframes, **options)


def audio_timeline(
    audio: str | os.PathLike, predicted: Sequence[Span], truth: Sequence[Span] = (), **options
) -> Image.Image:
    """:func:`timeline_picture` of a sound file with its waveform."""
    samples, duration = load_waveform(os.fspath(audio), WAVEFORM_RATE)
    return timeline_picture(duration, predicted, truth, waveform=samples.numpy(), **options)
