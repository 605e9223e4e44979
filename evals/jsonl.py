"""Reading JSON-lines data files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from zi_isag_tool.errors import InputError


def iter_json_lines(path: Path, text: str | None = None) -> Iterator[tuple[int, object]]:
    """``(line number, value)`` for every non-blank line of ``path`` (or of ``text`` read from it)."""
    if text is None:
        text = path.read_text(encoding="utf-8")
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield line_no, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{line_no}: not a JSON line ({exc.msg})") from exc


def read_json_objects(path: Path, text: str | None = None) -> list[dict[str, object]]:
    """The JSON objects of a JSON-lines file (other values are skipped)."""
    return [row for _, row in iter_json_lines(path, text) if isinstance(row, dict)]
