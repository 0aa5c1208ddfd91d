"""``gptground ground``: ask a model one question about a file, print the answer, draw it.

    gptground ground RUN/model street.png "Where is the red circle?" --out answer.png
    gptground ground RUN/model clip.mp4 "When does the square move?" --truth 1.5,3.0 --out t.png
    gptground ground RUN/model frame.png "Which object makes this sound?" --sound bark.wav

The answer is printed as JSON: the raw text, boxes in pixels or spans in seconds, and the
parts that could not be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from typing import TYPE_CHECKING

from gptground.grounding import Box, Span

if TYPE_CHECKING:  # the model, the media decoders and torch are imported when the command runs
    from gptground.api import BoxGrounding, Grounder, SpanGrounding

EXTENSIONS = {
    "image": {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"},
    "video": {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"},
    "audio": {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".au", ".wma"},
}


def modality_of_file(path: str) -> str:
    """ "image", "video" or "audio" from the file's extension.

    Raises:
        UnsupportedMediaError: the extension is none of :data:`EXTENSIONS`.
    """
    extension = os.path.splitext(path)[1].lower()
    for modality, extensions in EXTENSIONS.items():
        if extension in extensions:
            return modality
    from modalities import UnsupportedMediaError

    raise UnsupportedMediaError(
        path, f"cannot tell the modality from {extension or 'no extension'!r}; pass --modality image|video|audio"
    )


def parse_truth(values: list[str], modality: str) -> list[Box] | list[Span]:
    """``["x1,y1,x2,y2", ...]`` pixels for images, ``["start,end", ...]`` seconds otherwise."""
    size = 4 if modality == "image" else 2
    parsed = []
    for value in values:
        try:
            numbers = [float(v) for v in value.split(",")]
        except ValueError:
            numbers = []
        if len(numbers) != size:
            what = "x1,y1,x2,y2 pixels" if size == 4 else "start,end seconds"
            raise ValueError(f"--truth {value!r}: expected {what}")
        parsed.append(Box(*numbers) if size == 4 else Span(*numbers))
    return parsed


def add_ground_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``ground`` command's arguments to ``parser`` and return it."""
    parser.add_argument("model", help="model folder written by training (<run folder>/model)")
    parser.add_argument("media", help="an image, video or sound file")
    parser.add_argument("question", help='the question, e.g. "Where is the red circle?"')
    parser.add_argument(
        "--modality", choices=sorted(EXTENSIONS), default=None, help="what the file is (default: from its extension)"
    )
    parser.add_argument("--sound", default=None, help="with an image: a sound whose source to locate in it")
    parser.add_argument("--out", default=None, help="write a picture of the answer here (PNG)")
    parser.add_argument("--truth", nargs="+", default=[], help="true boxes x1,y1,x2,y2 (px) or spans start,end (s)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="the most tokens of the answer")
    parser.add_argument("--constrained", action="store_true", help="decode coordinates constrained to the format")
    parser.add_argument(
        "--format", dest="fmt", default=None, help="grounding format of the answers (default: the one the model folder records)"
    )
    parser.add_argument("--template", default=None, help="conversation template (default: the one the model folder records)")
    return parser


def run_ground(args: argparse.Namespace) -> int:
    """Run ``ground`` from parsed arguments; exit status 2 on bad input."""
    from gptground.api import Grounder

    try:
        modality = args.modality or modality_of_file(args.media)
        if args.sound and modality != "image":
            raise ValueError(f"--sound needs an image to locate the sound in, got a {modality} file")
        truth = parse_truth(args.truth, modality)
        grounder = Grounder.load(
            args.model,
            device=args.device,
            template=args.template,
            max_new_tokens=args.max_new_tokens,
            fmt=args.fmt,
            constrained=args.constrained,
        )
        answer = _ask(grounder, modality, args)
    except ValueError as error:  # bad arguments, a missing modality, a bad question
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = _report(answer)
    if args.out:
        _picture(answer, modality, args.media, truth).save(args.out)
        report["picture"] = args.out
    print(json.dumps(report, indent=2))
    return 0


def _ask(grounder: Grounder, modality: str, args: argparse.Namespace) -> BoxGrounding | SpanGrounding:
    if args.sound:
        return grounder.locate_sound(args.media, args.sound, args.question)
    if modality == "image":
        return grounder.ground_image(args.media, args.question)
    if modality == "video":
        return grounder.ground_video(args.media, args.question)
    return grounder.ground_audio(args.media, args.question)


def _report(answer: BoxGrounding | SpanGrounding) -> dict:
    from gptground.api import BoxGrounding  # imported already by run_ground

    report = {"question": answer.query, "answer": answer.text}
    if isinstance(answer, BoxGrounding):
        report.update(boxes=[b.as_list() for b in answer.boxes], image_size=list(answer.image_size))
    else:
        report.update(spans=[s.as_list() for s in answer.spans], duration=answer.duration)
    report["parse_failures"] = [f"{f.reason} at {f.offset}: {f.snippet!r}" for f in answer.failures]
    return report


def _picture(answer: BoxGrounding | SpanGrounding, modality: str, media: str, truth: list):
    from gptground.api import BoxGrounding
    from gptground.viz import audio_timeline, box_picture, video_timeline

    if isinstance(answer, BoxGrounding):
        return box_picture(media, answer.boxes, truth)
    draw = video_timeline if modality == "video" else audio_timeline
    return draw(media, answer.spans, truth, title=answer.query)
