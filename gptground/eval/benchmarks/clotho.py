"""Reader for Clotho captions (``clotho_captions_{development,validation,evaluation}.csv``).

A CSV with header ``file_name,caption_1,...,caption_5``: one audio file and its five
reference captions per row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from gptground.eval.benchmarks.items import AudioCaptionItem
from gptground.eval.errors import EvalInputError
from gptground.eval.files import PathLike, read_text

CAPTION_COLUMNS = tuple(f"caption_{k}" for k in range(1, 6))


def read_clotho(path: PathLike) -> Iterator[AudioCaptionItem]:
    """Read one item per audio file.

    Yields:
        AudioCaptionItem with id and ``sound`` both the ``file_name`` column.

    Raises:
        EvalInputError: The header lacks a column, or a row has an empty field.
    """
    reader = csv.DictReader(io.StringIO(read_text(path)))
    missing = {"file_name", *CAPTION_COLUMNS} - set(reader.fieldnames or ())
    if missing:
        raise EvalInputError(path, f"CSV header lacks column(s) {sorted(missing)}", line=1)
    for row in reader:
        values = [row.get(column) for column in ("file_name", *CAPTION_COLUMNS)]
        if any(value is None or not value.strip() for value in values):
            raise EvalInputError(path, "empty file name or caption", line=reader.line_num)
        name, *captions = (value.strip() for value in values)
        yield AudioCaptionItem(name, name, tuple(captions))
