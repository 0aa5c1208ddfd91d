"""Pictures: boxes on images and spans on time axes are drawn where they belong."""

from __future__ import annotations

import glob

import numpy as np
import pytest
from PIL import Image

from gptground.grounding import Box, Span
from gptground.viz import (
    BAR_HEIGHT,
    LABEL_WIDTH,
    PREDICTED,
    RIGHT_MARGIN,
    TRUE,
    audio_timeline,
    box_picture,
    timeline_picture,
    video_timeline,
)


def reopened(picture: Image.Image, tmp_path) -> Image.Image:
    path = tmp_path / "picture.png"
    picture.save(path)
    return Image.open(path).convert("RGB")


def test_boxes_are_drawn_in_their_colours_on_an_enlarged_image(tmp_path):
    image = Image.new("RGB", (80, 48), (128, 128, 128))
    picture = reopened(box_picture(image, [Box(10, 20, 30, 40)], [Box(40, 5, 70, 45)]), tmp_path)
    assert picture.size == (480, 288)  # the shorter side 48 -> 288 >= 256: a whole factor 6
    assert picture.getpixel((6 * 20, 6 * 40 - 1)) == PREDICTED  # bottom edge of the predicted box
    assert picture.getpixel((6 * 55, 6 * 45 - 1)) == TRUE


def test_box_picture_keeps_the_size_when_asked_and_reads_files(tmp_path):
    path = tmp_path / "frame.png"
    Image.new("RGB", (300, 200), (0, 0, 0)).save(path)
    picture = box_picture(path, [Box(-20, 10, 350, 150)], min_side=1)  # a box in the padding is cut
    assert picture.size == (300, 200)
    assert picture.getpixel((150, 150)) == PREDICTED


def _x(seconds: float, duration: float, width: int = 800) -> int:
    return round(LABEL_WIDTH + seconds / duration * (width - LABEL_WIDTH - RIGHT_MARGIN))


def test_timeline_bars_sit_at_their_seconds():
    picture = timeline_picture(4.0, [Span(1.0, 2.0)], [Span(3.0, 3.5)])
    assert picture.width == 800
    rows = np.asarray(picture)
    predicted_row = next(y for y in range(picture.height) if tuple(rows[y, _x(1.5, 4.0)]) == PREDICTED)
    assert tuple(rows[predicted_row + 2, _x(1.1, 4.0)]) == PREDICTED
    assert tuple(rows[predicted_row + 2, _x(2.5, 4.0)]) != PREDICTED
    true_row = predicted_row + BAR_HEIGHT
    assert any(tuple(rows[y, _x(3.25, 4.0)]) == TRUE for y in range(true_row, true_row + BAR_HEIGHT + 10))


def test_timeline_refuses_a_clip_without_length():
    with pytest.raises(ValueError, match="duration"):
        timeline_picture(0.0, [Span(0, 1)])


def test_video_and_audio_timelines_from_files(world, tmp_path):
    video = min(glob.glob(str(world.root / "videos/test/*.mp4")))
    picture = reopened(video_timeline(video, [Span(0.5, 1.0)], [Span(0.25, 1.5)], title="When?"), tmp_path)
    plain = timeline_picture(2.0, [Span(0.5, 1.0)], [Span(0.25, 1.5)], title="When?")
    assert picture.width == 800 and picture.height > plain.height  # the keyframe strip
    sound = min(glob.glob(str(world.root / "audio/test/aud-*")))
    wave = reopened(audio_timeline(sound, [Span(0.1, 0.4)]), tmp_path)
    assert wave.size == (800, timeline_picture(2.0, [Span(0.1, 0.4)], waveform=np.zeros(10)).height)
