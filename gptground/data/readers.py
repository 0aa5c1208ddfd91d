"""Annotation readers: GroundingGPT's record schema from JSON lists or JSONL, via fsspec.

A record looks like::

    {"id": "...", "image": "coco/xxx.jpg", "conversations": [
      {"from": "human", "value": "<image>\\nWhere is the man in red?"},
      {"from": "gpt", "value": "He is at [0.123, 0.456, 0.789, 0.900]."}]}

with ``video`` and ``sound`` keys likewise; media paths are relative to a per-key root
(``resolve_media_path``). The file may be a JSON list (records located by index,
``file[3]``) or JSONL (located by line, ``file:4``); which one is read from its first
character, ``[`` or ``{``. Paths may be local or any fsspec URL (``s3://``, ``memory://``...).

A malformed record either stops the read (``on_error="fail"``: ``RecordError`` naming file,
line or index and the reason) or is skipped and counted in the ``ReadReport`` of the
returned ``RecordSet`` (``on_error="skip"``), whose first reasons are logged.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import fsspec

from gptground.conversation import ConversationError, Turn, check_turns, normalize_role

logger = logging.getLogger(__name__)

MEDIA_KEYS = ("image", "video", "sound")  # GroundingGPT's media keys
ON_ERROR_CHOICES = ("fail", "skip")


class RecordError(ValueError):
    """A malformed annotation record. ``where`` is ``file:line`` or ``file[index]``."""

    def __init__(self, where: str, reason: str):
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


@dataclass
class Record:
    """One annotation record.

    Attributes:
        id: the record's ``id`` (as a string), or its location when it has none.
        conversations: alternating human / assistant turns.
        media: record key ("image", "video", "sound") -> path relative to that key's root.
        extra: every other top-level field, kept as read.
        where: ``file:line`` or ``file[index]`` it was read from ("" if built in code).
    """

    id: str
    conversations: list[Turn]
    media: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass
class ReadReport:
    """What a read kept and skipped; ``reasons`` holds the first ``max_reasons`` errors."""

    path: str
    kept: int = 0
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)
    max_reasons: int = 20

    def add_error(self, error: RecordError) -> None:
        self.skipped += 1
        if len(self.reasons) < self.max_reasons:
            self.reasons.append(str(error))

    def summary(self) -> str:
        text = f"{self.path}: kept {self.kept} records, skipped {self.skipped}"
        if self.reasons:
            shown = "\n  ".join(self.reasons)
            text += f"; first {len(self.reasons)} reasons:\n  {shown}"
        return text


@dataclass
class RecordSet(Sequence[Record]):
    """The records of one file and the report of how reading went."""

    records: list[Record]
    report: ReadReport

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    def __getitem__(self, index):
        return self.records[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)


def resolve_media_path(root: str | None, relative: str) -> str:
    """Join a media root (local folder or fsspec URL prefix) with a record's path.

    An absolute path or a URL in the record is used as is, like ``os.path.join`` does.
    """
    if not root or relative.startswith("/") or "://" in relative:
        return relative
    return f"{root.rstrip('/')}/{relative}"


def media_exists(path: str) -> bool:
    """Whether a local path or fsspec URL names an existing file."""
    fs, fs_path = fsspec.core.url_to_fs(path)
    return fs.isfile(fs_path)


def parse_record(obj: Any, where: str, media_keys: Sequence[str] = MEDIA_KEYS) -> Record:
    """A typed Record from one decoded JSON value; RecordError says what is wrong.

    Args:
        obj: the decoded JSON value.
        where: its location, used in errors and as the id of records without one.
        media_keys: top-level keys holding media paths.
    """
    if not isinstance(obj, dict):
        raise RecordError(where, f"a record must be a JSON object, got {type(obj).__name__}")
    if "conversations" not in obj:
        raise RecordError(where, "missing 'conversations'")
    turns = _parse_turns(obj["conversations"], where)
    media = {}
    for key in media_keys:
        if key in obj:
            value = obj[key]
            if not isinstance(value, str) or not value:
                raise RecordError(where, f"'{key}' must be a non-empty path string, got {value!r}")
            media[key] = value
    reserved = {"id", "conversations", *media_keys}
    extra = {k: v for k, v in obj.items() if k not in reserved}
    return Record(id=_parse_id(obj.get("id"), where), conversations=turns, media=media, extra=extra, where=where)


def _parse_id(value: Any, where: str) -> str:
    if value is None:
        return where
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(where, f"'id' must be a string or an integer, got {value!r}")
    return str(value)


def _parse_turns(raw: Any, where: str) -> list[Turn]:
    if not isinstance(raw, list) or not raw:
        raise RecordError(where, "'conversations' must be a non-empty list of turns")
    turns = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "from" not in item or "value" not in item:
            raise RecordError(where, f"conversations[{i}] must be an object with 'from' and 'value'")
        if not isinstance(item["value"], str):
            raise RecordError(where, f"conversations[{i}].value must be a string, got {type(item['value']).__name__}")
        try:
            turns.append(Turn(normalize_role(item["from"]), item["value"]))
        except ConversationError as e:
            raise RecordError(where, f"conversations[{i}]: {e}") from e
    try:
        check_turns(turns)
    except ConversationError as e:
        raise RecordError(where, f"conversations: {e}") from e
    return turns


def _check_media(record: Record, roots: Mapping[str, str]) -> None:
    for key, relative in record.media.items():
        if key in roots:
            path = resolve_media_path(roots[key], relative)
            if not media_exists(path):
                raise RecordError(record.where, f"'{key}' points to a missing file: {path}")


def _json_entries(lines: Iterable[str], path: str) -> Iterator[tuple[str, Any]]:
    """(location, decoded value or RecordError) for each record of a JSON list or JSONL text."""
    lines = iter(lines)
    head = []  # leading blank lines, kept so that line numbers stay true
    first = next(lines, "")
    while first and not first.strip():
        head.append(first)
        first = next(lines, "")
    if first.lstrip().startswith("["):
        text = "".join([*head, first, *lines])
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:  # nothing in a broken list can be trusted: not skippable
            raise RecordError(f"{path}:{e.lineno}", f"invalid JSON list: {e.msg} (column {e.colno})") from e
        for i, item in enumerate(items):
            yield f"{path}[{i}]", item
        return
    for line_no, line in enumerate(itertools.chain([first], lines), start=len(head) + 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            yield where, RecordError(where, f"invalid JSON: {e.msg} (column {e.colno})")


def read_records(
    path: str,
    on_error: str = "fail",
    check_media_roots: Mapping[str, str] | None = None,
    media_keys: Sequence[str] = MEDIA_KEYS,
    max_reasons: int = 20,
) -> RecordSet:
    """Read and validate every record of a JSON list or JSONL annotation file.

    Args:
        path: local path or fsspec URL.
        on_error: "fail" raises the first RecordError; "skip" drops bad records and counts
            them in the report (logged as a warning).
        check_media_roots: record key -> media root; when given, each record's media file
            under that root must exist (one existence check per file).
        media_keys: top-level keys holding media paths.
        max_reasons: how many skip reasons the report keeps.

    Raises:
        RecordError: a bad record with ``on_error="fail"``, or a JSON list that does not parse.
        FileNotFoundError: no file at ``path``.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    report = ReadReport(path=path, max_reasons=max_reasons)
    records = []
    with fsspec.open(path, "rt", encoding="utf-8") as f:
        for where, value in _json_entries(f, path):
            try:
                records.append(_validated(value, where, media_keys, check_media_roots))
            except RecordError as e:
                if on_error == "fail":
                    raise
                report.add_error(e)
    report.kept = len(records)
    if report.skipped:
        logger.warning(report.summary())
    return RecordSet(records, report)


def _validated(value: Any, where: str, media_keys: Sequence[str], roots: Mapping[str, str] | None) -> Record:
    if isinstance(value, RecordError):
        raise value
    record = parse_record(value, where, media_keys)
    if roots:
        _check_media(record, roots)
    return record
