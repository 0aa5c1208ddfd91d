"""Data: annotation readers (this package's ``readers``) and the training mixture."""

from gptground.data.readers import (
    MEDIA_KEYS,
    ReadReport,
    Record,
    RecordError,
    RecordSet,
    media_exists,
    parse_record,
    read_records,
    resolve_media_path,
)

__all__ = [
    "MEDIA_KEYS",
    "ReadReport",
    "Record",
    "RecordError",
    "RecordSet",
    "media_exists",
    "parse_record",
    "read_records",
    "resolve_media_path",
]
