"""Reading JSON-lines data files: one parse loop, with errors that name the file and line.

``json_lines`` never raises on a bad line (callers that skip bad records read ``problem``);
``iter_json_lines`` and ``read_json_objects`` stop at the first bad line with an ``InputError``.
Lines are split on ``\\n`` only (as a file is read), so a raw U+2028 inside a JSON string, which
``json.dumps(ensure_ascii=False)`` writes, does not cut a record in two.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zi_isag_tool.errors import InputError

__all__ = ["JsonLine", "json_lines", "iter_json_lines", "read_json_objects"]


@dataclass(frozen=True, slots=True)
class JsonLine:
    """One non-blank line: its 1-based number and value, or why it is not JSON."""

    number: int
    value: Any
    """The parsed value (``None`` when ``problem`` is set)."""
    problem: str | None = None


def json_lines(path: str | Path, text: str | None = None) -> Iterator[JsonLine]:
    """Every non-blank line of ``path`` (or of ``text`` read from it), parsed; read as a stream."""
    with (open(path, encoding="utf-8") if text is None else io.StringIO(text)) as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield JsonLine(number, json.loads(line))
            except json.JSONDecodeError as exc:
                yield JsonLine(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})")


def iter_json_lines(path: str | Path, text: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line; a line that is not JSON raises ``InputError``."""
    for line in json_lines(path, text):
        if line.problem is not None:
            raise InputError(f"{path}:{line.number}: {line.problem}")
        yield line.number, line.value


def read_json_objects(path: str | Path, text: str | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (other values are skipped)."""
    return [row for _, row in iter_json_lines(path, text) if isinstance(row, dict)]
