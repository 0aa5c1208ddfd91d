"""Reader for Flickr30K Entities (``Sentences/*.txt`` + ``Annotations/*.xml``).

A sentence file holds the five captions of one image, one per line, with entity markup
``[/EN#<entity id>/<type>[/<type>...] <phrase words>]``. The annotation XML of the image
gives ``<size>`` and ``<object>`` elements; an object names one or more entity ids and
has either a ``<bndbox>`` (1-based pixel indices) or ``<nobndbox>``/``<scene>`` flags.

Box convention: the dataset's own utilities subtract 1 from each of ``xmin, ymin, xmax,
ymax``; so does this reader, so IoUs match the published evaluation scripts.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator

from gptground.eval.benchmarks.items import GroundedPhrase, PhraseGroundingItem
from gptground.eval.errors import EvalInputError
from gptground.eval.fields import Where, image_size
from gptground.eval.files import PathLike, iter_lines, join_path, read_text
from gptground.grounding.types import Box

# "[/EN#123/people/other A young man]" -> id "123", types "/people/other", words
_ENTITY = re.compile(r"\[/EN#(\d+)((?:/[^\s\[\]/]+)+)\s+([^\[\]]+?)\]")


def read_flickr30k_entities(
    root: PathLike, image_ids: Iterable[str] | None = None, *, split_file: PathLike | None = None
) -> Iterator[PhraseGroundingItem]:
    """Read the captions of the given images with their grounded phrases.

    Args:
        root: Folder holding ``Sentences/`` and ``Annotations/``.
        image_ids: Flickr image ids (file stems) to read.
        split_file: Or a ``train.txt``/``val.txt``/``test.txt`` listing one id per line.

    Yields:
        PhraseGroundingItem with id ``"{image_id}_{caption index}"`` and image
        ``"{image_id}.jpg"``, one per caption.

    Raises:
        ValueError: Neither or both of ``image_ids`` and ``split_file`` are given.
        EvalInputError: Malformed markup or XML (names the file and line).
    """
    for image_id in _image_ids(image_ids, split_file):
        size, entity_boxes = read_annotation(join_path(root, "Annotations", f"{image_id}.xml"))
        sentences = join_path(root, "Sentences", f"{image_id}.txt")
        for index, (line, caption) in enumerate(iter_lines(sentences)):
            plain, phrases = parse_caption(caption, entity_boxes, Where(sentences, line=line))
            yield PhraseGroundingItem(
                f"{image_id}_{index}", f"{image_id}.jpg", plain, phrases, size
            )


def parse_caption(
    caption: str, entity_boxes: dict[str, tuple[Box, ...]], where: Where
) -> tuple[str, tuple[GroundedPhrase, ...]]:
    """Split one marked-up caption into its plain text and its grounded phrases.

    Args:
        caption: A caption line with ``[/EN#id/type words]`` markup.
        entity_boxes: Entity id -> boxes, from :func:`read_annotation`.
        where: The caption's file and line, for errors.

    Returns:
        The caption without markup, and its phrases in reading order.
    """
    pieces: list[str] = []
    phrases: list[GroundedPhrase] = []
    cursor = length = 0  # cursor: offset in the marked-up caption; length: in the plain one
    for match in _ENTITY.finditer(caption):
        entity_id, types, words = match.groups()
        pieces.append(caption[cursor : match.start()])
        length += match.start() - cursor
        boxes = entity_boxes.get(entity_id, ())
        kinds = tuple(types.strip("/").split("/"))
        phrases.append(GroundedPhrase(words, boxes, length, entity_id, kinds))
        pieces.append(words)
        length += len(words)
        cursor = match.end()
    plain = "".join(pieces) + caption[cursor:]
    if "[" in plain or "]" in plain:
        raise where.error(f"malformed entity markup in {caption!r}")
    return plain, tuple(phrases)


def read_annotation(path: str) -> tuple[tuple[int, int], dict[str, tuple[Box, ...]]]:
    """Read one ``Annotations/<id>.xml``: image size and entity id -> boxes.

    Raises:
        EvalInputError: The XML does not parse or lacks a size or box coordinate.
    """
    try:
        root = ElementTree.fromstring(read_text(path))
    except ElementTree.ParseError as error:
        raise EvalInputError(path, f"invalid XML: {error}", line=error.position[0]) from error
    where = Where(path)
    size = image_size(_int(root, "size/width", where), _int(root, "size/height", where), where)
    boxes: dict[str, list[Box]] = {}
    for obj in root.iter("object"):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            continue
        box = Box(*(_int(bndbox, tag, where) - 1 for tag in ("xmin", "ymin", "xmax", "ymax")))
        for name in obj.iter("name"):
            boxes.setdefault((name.text or "").strip(), []).append(box)
    return size, {entity: tuple(entity_list) for entity, entity_list in boxes.items()}


def _int(element: ElementTree.Element, tag: str, where: Where) -> int:
    found = element.findtext(tag)
    if found is None or not found.strip().lstrip("-").isdigit():
        raise where.error(f"<{tag}> must hold an integer, got {found!r}")
    return int(found)


def _image_ids(image_ids: Iterable[str] | None, split_file: PathLike | None) -> Iterable[str]:
    if (image_ids is None) == (split_file is None):
        raise ValueError("give exactly one of image_ids and split_file")
    if split_file is not None:
        return [line for _, line in iter_lines(os.fspath(split_file))]
    return image_ids
