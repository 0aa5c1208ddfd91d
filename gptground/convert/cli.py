"""``gptground convert groundinggpt SRC --out DEST``: arguments here, heavy imports at run time."""

from __future__ import annotations

import argparse
import sys

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def add_groundinggpt_arguments(lego: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``gptground convert groundinggpt``."""
    lego.description = (
        "Convert the released GroundingGPT-7B checkpoint (a folder or hub id in its LEGO layout) "
        "into a self-contained model folder for Grounder.load, `gptground eval` and `gptground ground`."
    )
    lego.add_argument("source", metavar="SRC", help="the release: a local folder or a hub id (zwli/GroundingGPT)")
    lego.add_argument("--out", required=True, metavar="DEST", help="the model folder to write")
    lego.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="dtype of the converted weights")
    lego.add_argument(
        "--image-encoder",
        metavar="CLIP",
        help="the CLIP image tower (folder or hub id); default: the release's config.mm_vision_tower",
    )
    lego.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    return lego


def run_convert(args) -> int:
    import torch

    from gptground.convert.errors import ConversionError
    from gptground.convert.groundinggpt import convert_groundinggpt

    try:
        path = convert_groundinggpt(
            args.source, args.out, getattr(torch, DTYPES[args.dtype]), args.image_encoder, args.overwrite
        )
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0
