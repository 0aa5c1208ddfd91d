"""The one error type for malformed evaluation inputs."""

from __future__ import annotations

import os


class EvalInputError(ValueError):
    """A benchmark annotation file or a predictions file is malformed.

    The message starts with the location, ``path:line`` for line-based files (so editors
    can jump to it) and ``path (record X)`` for records inside a JSON document, then says
    what is wrong.

    Attributes:
        path: The file that holds the bad input.
        line: 1-based line number, for line-based files (JSONL, TXT, CSV).
        record: The index or key of the bad record inside a JSON document.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        message: str,
        *,
        line: int | None = None,
        record: int | str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.record = record
        super().__init__(f"{self.location}: {message}")

    @property
    def location(self) -> str:
        """Where the bad input is: ``path``, ``path:line`` and/or ``(record X)``."""
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return where if self.record is None else f"{where} (record {self.record!r})"


class EvalMediaError(RuntimeError):
    """Items whose media failed to load, in a ``strict`` evaluation.

    Attributes:
        failures: (item id, the media error's message, which names the file) per item.
    """

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = list(failures)
        shown = "; ".join(f"item {item!r}: {error}" for item, error in self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        super().__init__(f"{len(self.failures)} item(s) whose media failed to load: {shown}{more}")
