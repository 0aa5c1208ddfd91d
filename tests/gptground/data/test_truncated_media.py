"""Every kind of file the synthetic world writes, cut at many points: each cut either loads or
fails with a typed ``MediaError`` naming the file, never another exception (issue 17, fault 2).

Kinds: mp4 with MPEG-4 Part 2 and with H.264 (the two ``video.codec`` choices), WAV and FLAC
(16-bit PCM, ``audio.formats``), PNG (every image), and what users' own data brings: JPEG,
and AAC in m4a (read by PyAV, whose stream table can be cut like an mp4's).
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from gptground.synth import (
    STAGE_TASKS,
    AudioWorldConfig,
    ImageWorldConfig,
    SynthConfig,
    TaskCounts,
    VideoWorldConfig,
    generate_world,
)
from modalities.audio_decode import load_waveform
from modalities.errors import MediaError
from modalities.image import decode_image
from modalities.video_io import read_video

KINDS = ("mp4-mpeg4", "mp4-libx264", "wav", "flac", "png", "jpeg", "m4a-aac")


def _world(root: Path, codec: str, audio_format: str) -> Path:
    """One record per task; 6 s clips at 25 frames/s (150 frames, several KB) so that cuts
    fall inside the frame data as well as inside the headers."""
    tasks = [t for stage in STAGE_TASKS.values() for t in stage]
    config = SynthConfig(
        seed=0,
        train=TaskCounts(**{t: 1 for t in tasks}),
        val=TaskCounts(),
        test=TaskCounts(),
        image=ImageWorldConfig(sizes=((64, 48),)),
        video=VideoWorldConfig(sizes=((96, 64),), fps=(25,), durations=(6.0,), codec=codec),
        audio=AudioWorldConfig(sample_rates=(16000,), durations=(2.0,), formats=(audio_format,), sound_loc_duration=1.0),
        workers=1,
    )
    generate_world(root, config, progress=False)
    return root


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    """kind -> one file of that kind as the synthetic world wrote it (JPEG: a PNG re-saved)."""
    base = tmp_path_factory.mktemp("cut-media")
    a = _world(base / "mpeg4-wav", "mpeg4", "wav")
    b = _world(base / "x264-flac", "libx264", "flac")
    files = {
        "mp4-mpeg4": next(a.glob("videos/train/*.mp4")),
        "mp4-libx264": next(b.glob("videos/train/*.mp4")),
        "wav": next(a.glob("audio/train/aud-*.wav")),
        "flac": next(b.glob("audio/train/aud-*.flac")),
        "png": next(a.glob("images/train/img-*.png")),
    }
    jpeg = base / "img.jpg"
    Image.open(files["png"]).convert("RGB").save(jpeg, quality=90)
    files["jpeg"] = jpeg
    files["m4a-aac"] = _write_aac(base / "tone.m4a", seconds=1.0, sample_rate=16000)
    return files


def _write_aac(path: Path, seconds: float, sample_rate: int) -> Path:
    """A 440 Hz tone, AAC in an m4a container (PyAV writes its moov box last, as for mp4)."""
    samples = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(int(seconds * sample_rate)) / sample_rate)).astype(np.float32)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def _load(path: Path, kind: str) -> None:
    if kind.startswith("mp4"):
        read_video(path, num_samples=8, max_frame_pixels=10**8)
    elif kind in ("wav", "flac", "m4a-aac"):
        load_waveform(path, sample_rate=16000)
    else:
        decode_image(path, max_pixels=10**8)


# Boxes of an mp4's stream table (the moov box, which PyAV writes after the frames). A cut
# between 'mdia' and 'stsd' left a stream without a decoder and PyAV raised AttributeError:
# a few dozen bytes, which an even grid of cuts can miss, so each box start is cut too.
MP4_BOXES = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"stts", b"stss", b"stsc", b"stsz", b"stco")


def cut_points(data: bytes, steps: int) -> list[int]:
    """Byte counts to keep: the first and last few bytes, ``steps`` even fractions, and the
    start of every mp4 stream-table box the file holds."""
    size = len(data)
    ends = [1, 2, 3, 8, 16, size - 16, size - 8, size - 3, size - 2, size - 1]
    boxes = [data.find(box) for box in MP4_BOXES]
    grid = [size * i // steps for i in range(1, steps)]
    return sorted({c for c in ends + boxes + grid if 0 < c < size})


def _check_cuts(original: Path, kind: str, cuts: list[int], folder: Path) -> dict[str, int]:
    """Load every cut; returns {"loaded": n, "refused": n}; fails on any other exception."""
    data = original.read_bytes()
    outcome = {"loaded": 0, "refused": 0}
    for keep in cuts:
        cut = folder / f"cut-{keep}{original.suffix}"
        cut.write_bytes(data[:keep])
        try:
            _load(cut, kind)
        except MediaError as e:
            assert str(cut) in str(e), f"the error of a {kind} cut at {keep} bytes does not name the file: {e}"
            outcome["refused"] += 1
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{kind} cut at {keep}/{len(data)} bytes raised {type(e).__name__}: {e}")
        else:
            outcome["loaded"] += 1
        cut.unlink()
    return outcome


@pytest.mark.parametrize("kind", KINDS)
def test_a_cut_file_loads_or_fails_with_a_media_error_naming_it(originals, kind, tmp_path, caplog):
    cuts = cut_points(originals[kind].read_bytes(), steps=25)  # every 4 %, the ends, mp4 boxes: ~30-40
    with caplog.at_level(logging.ERROR):  # decord's fallback warnings are expected here
        outcome = _check_cuts(originals[kind], kind, cuts, tmp_path)
    assert outcome["refused"] > 0  # the cuts did break the file


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_every_half_percent_cut_loads_or_fails_with_a_media_error(originals, kind, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        _check_cuts(originals[kind], kind, cut_points(originals[kind].read_bytes(), steps=200), tmp_path)


def test_the_originals_load(originals):
    """The uncut files decode (so a refused cut is the cut's doing, not the file's)."""
    for kind, path in originals.items():
        _load(path, kind)
