"""Media throughput: decoding and frozen-encoder rates of the modalities on this machine.

    python benchmarks/media.py                  # all rows
    python benchmarks/media.py --no-reference   # skip the real-sized encoders (slow on CPU)

Prints one table, ``what | backend | items/s``. Each modality contributes a section: a
function returning ``(what, backend, items/s)`` rows, listed in ``SECTIONS``. The
reference-shaped encoders have random weights (no downloads) but the real shapes: CLIP
ViT-L/14 at 336 px for images (577 tokens, 23 of 24 layers run), and per video frame CLIP
ViT-L/14 at 224 px + BLIP-2's 12-layer, 32-query Q-Former. On CUDA they run in bf16 autocast
with larger batches; on CPU in fp32.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import decord
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "modalities")]  # the repo and its media factory

from media_factory import make_video  # noqa: E402

import media_audio  # noqa: E402  (this folder is on sys.path when run as a script)

from modalities import build_modality  # noqa: E402
from modalities.video_io import read_video  # noqa: E402

Row = tuple[str, str, float]  # (what, backend, items per second)

TINY_IMAGE = {"encoder": "tiny", "image_size": 32}
REFERENCE_CLIP = {"patch_size": 14, "hidden_size": 1024, "num_layers": 24, "num_heads": 16}  # ViT-L/14
TINY_VIDEO = {
    "num_frames": 8, "image_size": 32, "frame_encoder": "tiny", "frame_qformer": "tiny", "num_queries": 16,
    "adapter_hidden_size": 32, "adapter_num_heads": 2, "adapter_intermediate_size": 64,
}
REFERENCE_VIDEO = {
    "num_frames": 64, "image_size": 224, "frame_encoder": "tiny", "frame_qformer": "tiny",
    "tiny_encoder": REFERENCE_CLIP,
    "tiny_qformer": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "num_queries": 32},
}


def rate(fn: Callable[[], object], repeats: int, items: int = 1) -> float:
    """Items per second of ``fn`` (``items`` per call), after one untimed warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return items * repeats / (time.perf_counter() - start)


def encode_rate(modality, batch: torch.Tensor, items: int, device: str, repeats: int) -> float:
    """Items/s through ``modality.encode`` on ``device`` (bf16 autocast on CUDA)."""
    modality.to(device)
    batch = batch.to(device)
    on_gpu = device.startswith("cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):
            modality.encode(batch)
        if on_gpu:
            torch.cuda.synchronize(device)

    return rate(step, repeats, items)


def backend_name(device: str) -> str:
    return f"torch {device} {'bf16' if device.startswith('cuda') else 'fp32'}"


# --- image ------------------------------------------------------------------------------------
def image_rows(device: str, reference: bool) -> list[Row]:
    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)).save(photo, "JPEG")
    image = build_modality("image", TINY_IMAGE, d_model=32)

    def load_transform() -> torch.Tensor:
        photo.seek(0)
        return image.transform(image.load(photo), train=False)

    rows = [("image load+transform, 640x480 JPEG -> 32 px", "PIL+torchvision", rate(load_transform, 50))]
    batch = 64 if device.startswith("cuda") else 16
    rows.append(("image encode, tiny CLIP 32 px", backend_name(device),
                 encode_rate(image, torch.randn(batch, 3, 32, 32), batch, device, 10)))
    if reference:
        big = build_modality("image", {"encoder": "tiny", "image_size": 336, "tiny": REFERENCE_CLIP}, d_model=32)
        batch = 32 if device.startswith("cuda") else 1
        rows.append(("image encode, CLIP-L/14-336 shape (random weights)", backend_name(device),
                     encode_rate(big, torch.randn(batch, 3, 336, 336), batch, device, 5 if batch > 1 else 2)))
    return rows


# --- video ------------------------------------------------------------------------------------
def video_rows(device: str, reference: bool) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        clip = str(make_video(Path(folder) / "clip.mp4", num_frames=250, size=(640, 360), fps=25, codec="h264"))
        rows = [
            ("video decode, 64 of 250 frames, 640x360 h264", "decord", rate(lambda: read_video(clip, 64, 10**8), 3, 64)),
            ("video decode, 64 of 250 frames, 640x360 h264", "PyAV", _pyav_rate(clip)),
        ]
    rows += _video_encode_rows(device, reference)
    return rows


def _pyav_rate(clip: str) -> float:
    """Sampled frames/s through the PyAV path, with decord made to refuse the file."""
    original = decord.VideoReader

    def refuse(*args, **kwargs):
        raise decord.DECORDError("benchmarking the PyAV fallback")

    decord.VideoReader = refuse
    try:
        return rate(lambda: read_video(clip, 64, 10**8), 3, 64)
    finally:
        decord.VideoReader = original


def _video_encode_rows(device: str, reference: bool) -> list[Row]:
    on_gpu = device.startswith("cuda")
    tiny = build_modality("video", TINY_VIDEO, d_model=32)
    rows = [("video encode, tiny CLIP + tiny Q-Former, frames", backend_name(device),
             encode_rate(tiny, torch.randn(4, 8, 3, 32, 32), 32, device, 10))]
    if reference:
        big = build_modality("video", REFERENCE_VIDEO, d_model=32)
        frames = 64 if on_gpu else 2
        rows.append(("video encode, CLIP-L/14-224 + 12-layer Q-Former shape, frames", backend_name(device),
                     encode_rate(big, torch.randn(1, frames, 3, 224, 224), frames, device, 5 if on_gpu else 1)))
    return rows


SECTIONS: list[Callable[[str, bool], list[Row]]] = [
    image_rows,
    video_rows,
    lambda device, reference: media_audio.rows(device=device),
]


def print_table(rows: list[Row]) -> None:
    header = ("what", "backend", "items/s")
    cells = [header] + [(what, backend, f"{value:,.1f}") for what, backend, value in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    for i, row in enumerate(cells):
        print(f"{row[0]:<{widths[0]}} | {row[1]:<{widths[1]}} | {row[2]:>{widths[2]}}")
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-reference", action="store_true", help="skip the real-sized encoders")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [row for section in SECTIONS for row in section(args.device, not args.no_reference)]
    print_table(rows)


if __name__ == "__main__":
    main()
