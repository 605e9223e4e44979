"""The training record written by every construction route, and JSONL helpers over ``datasets.jsonl``.

One JSON object a line, TRL's conversational prompt-completion layout plus provenance::

    {"id": "...", "format": "tag_only" | "info_tag",
     "prompt": [{"role": "user", "content": "<the ZI-ISAG prompt with the tagged window>"}],
     "completion": [{"role": "assistant", "content": "#Extracted Information Tag#: [[<T-3>]]"}],
     "tags": [3], "n_tags": 17, "negative": false, "route": "teacher" | "gold", "meta": {...}}

The prompt is kept as messages (not rendered text) so the same file trains any chat model: the
target model's own template renders it at tokenisation time, exactly as the extractor will at
inference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from zi_isag_tool.datasets.jsonl import iter_json_lines, json_lines
from zi_isag_tool.errors import InputError
from zi_isag_tool.parser import format_tags

Format = Literal["tag_only", "info_tag"]
FORMATS: tuple[Format, ...] = ("tag_only", "info_tag")
INFO_NONE = "#Extracted Information#: None"


def messages_for(fmt: Format, query: str, tagged_text: str) -> list[dict[str, str]]:
    from zi_isag_tool.prompts import info_tag_messages, tag_only_messages

    build = tag_only_messages if fmt == "tag_only" else info_tag_messages
    return [dict(m) for m in build(query, tagged_text)]


def make_record(
    *,
    record_id: str,
    fmt: Format,
    query: str,
    tagged_text: str,
    n_tags: int,
    tags: Iterable[int],
    route: str,
    answer: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A record; the tag-only answer is the canonical ``format_tags``, the info+tag one is ``answer``."""
    tag_list = sorted(set(tags))
    if fmt == "tag_only":
        completion = format_tags(tag_list)
    else:
        completion = answer if answer is not None else INFO_NONE
    return {
        "id": record_id,
        "format": fmt,
        "prompt": messages_for(fmt, query, tagged_text),
        "completion": [{"role": "assistant", "content": completion}],
        "tags": tag_list,
        "n_tags": n_tags,
        "negative": not tag_list,
        "route": route,
        "meta": meta or {},
    }


def read_jsonl(path: str | Path, *, required: Iterable[str] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)``; a line that is not an object with the required fields raises ``InputError``."""
    need = tuple(required)
    for n, obj in iter_json_lines(path):
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{n}: expected a JSON object")
        missing = [k for k in need if k not in obj]
        if missing:
            raise InputError(f"{path}:{n}: missing field(s) {', '.join(missing)}")
        yield n, obj


def reject_bad(message: str, *, on_bad: str, log: Any) -> None:
    """A bad input record: raise with ``on_bad='error'``, otherwise log it and let the caller skip it."""
    if on_bad == "error":
        raise InputError(message)
    log.warning("%s (skipped)", message)


def iter_valid(
    path: str | Path, required: Iterable[str], *, on_bad: str, log: Any
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Like ``read_jsonl`` but a bad line is logged by number and skipped unless ``on_bad='error'``."""
    need = tuple(required)
    for row in json_lines(path):
        obj, problem = row.value, row.problem
        if problem is None and not isinstance(obj, dict):
            problem = "expected a JSON object"
        if problem is None:
            missing = [k for k in need if not isinstance(obj.get(k), str) or not obj.get(k).strip()]
            if missing:
                problem = f"missing or empty field(s): {', '.join(missing)}"
        if problem:
            reject_bad(f"{path}:{row.number}: {problem}", on_bad=on_bad, log=log)
            continue
        yield row.number, obj


class JsonlWriter:
    """Write records atomically: to ``PATH.tmp`` first, renamed over ``PATH`` on success."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._fh = open(self._tmp, "w", encoding="utf-8")
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._fh.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)
