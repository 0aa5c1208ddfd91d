"""Small image and video files made on the fly for the modality tests and benchmarks.

Every maker writes a real file that a real decoder reads, and returns its path. Videos show
a frame counter as a brightness ramp (frame i has mean value ``ramp_value(i, n)``), so a
test can tell which frame a decoder returned.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def ramp_value(index: int, num_frames: int) -> int:
    """Grey level of frame ``index`` in a ``make_video`` clip: 16 .. 240 spread over the clip."""
    return round(16 + 224 * index / max(1, num_frames - 1))


def make_video(
    path: Path,
    num_frames: int = 12,
    size: tuple[int, int] = (64, 48),
    fps: int = 10,
    codec: str = "mpeg4",
) -> Path:
    """Write a ``num_frames`` clip of ``size`` = (width, height) at ``fps`` frames/s.

    Frame i is flat grey at ``ramp_value(i)`` with a white bar in its top-left quarter, so
    crops and orientation stay visible. ``codec``: any PyAV encoder ("mpeg4", "h264", ...).
    ``num_frames=0`` writes a header with a video stream and no frames (use an ``.avi`` path:
    MP4 drops a stream that never got a frame).
    """
    width, height = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "4"}  # keyframe every 4 frames: decoders must really seek
        container.start_encoding()  # writes the header even if no frame follows
        for i in range(num_frames):
            frame = np.full((height, width, 3), ramp_value(i, num_frames), np.uint8)
            frame[: height // 4, : width // 4] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 24), fmt: str | None = None) -> Path:
    """Write a ``size`` = (width, height) image in a Pillow ``mode``: left half dark, right light.

    Modes: RGB, L, LA, RGBA (right half transparent), P (with a transparent index), CMYK,
    I;16 (16-bit grey: left 0, right 65535). ``fmt`` defaults to the path's extension.
    """
    width, height = size
    left = np.zeros((height, width), bool)
    left[:, : width // 2] = True
    img = _image_in_mode(mode, left)
    img.save(path, format=fmt)
    return path


def _image_in_mode(mode: str, left: np.ndarray) -> Image.Image:
    grey = np.where(left, 40, 200).astype(np.uint8)
    if mode == "I;16":
        return Image.fromarray(np.where(left, 0, 65535).astype(np.uint16))  # mode "I;16"
    if mode in ("RGBA", "LA"):
        base = Image.fromarray(np.stack([grey] * 3, -1)).convert(mode[:-1] or "RGB")
        base.putalpha(Image.fromarray(np.where(left, 255, 0).astype(np.uint8)))
        return base
    if mode == "P":
        img = Image.fromarray(np.where(left, 1, 0).astype(np.uint8), mode="P")
        img.putpalette([0, 0, 0, 250, 10, 10] + [0] * 762)
        img.info["transparency"] = 0  # index 0 (the right half) is transparent
        return img
    return Image.fromarray(np.stack([grey] * 3, -1)).convert(mode)


def make_exif_rotated_jpeg(path: Path, size: tuple[int, int] = (40, 20), orientation: int = 6) -> Path:
    """A JPEG stored ``size`` wide x high whose EXIF says rotate (6: 90 deg clockwise on show)."""
    img = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation tag
    img.save(path, format="JPEG", exif=exif.tobytes())
    return path


def make_png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` with almost no pixel data behind it.

    A decoder that trusted it would allocate width * height * 3 bytes; loaders must refuse
    it from the header alone.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to its first ``keep`` fraction of bytes, in place."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path
