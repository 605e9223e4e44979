"""Checks every training record must pass before it is written or trained on.

1. the record has a prompt and a completion of the right shape;
2. every tag the completion names (``<T-i>``, ranges expanded) is a tag of the prompt's reference
   material, and a tag-only completion reads back through the extractor's parser;
3. the chat template renders it, with the prompt a prefix of the whole (so labels are exact);
4. prompt + completion fit ``max_seq_length`` tokens.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zi_isag_tool.datasets.jsonl import json_lines
from zi_isag_tool.parser import TAG_ONLY_PREFIX, parse_tags

from ..record import RecordError, completion_text, encode_record, prompt_text, record_parts

log = logging.getLogger(__name__)

_OPEN_TAG_RE = re.compile(r"<T-(\d+)>")
_MAX_ID = 1_000_000


def prompt_tags(prompt: str) -> set[int]:
    """Tag numbers wrapped in the prompt's reference material (the template's own examples excluded)."""
    # The instructions mention the markers too; the material sits between the last pair (markers
    # inside page text are defused by the prompt renderer).
    start, end = prompt.rfind("<Reference Materials>"), prompt.rfind("</Reference Materials>")
    body = prompt[start:end] if 0 <= start < end else prompt
    return {int(m) for m in _OPEN_TAG_RE.findall(body)}


def completion_tags(completion: str) -> tuple[list[int], bool]:
    """Every id the completion names, ranges expanded; and whether it is an explicit ``None``."""
    parsed = parse_tags(completion, _MAX_ID, max_range=4096)
    return parsed.tags, parsed.none


def check_tags(record: dict[str, Any]) -> str | None:
    """A problem with the completion's tags, or None."""
    prompt = prompt_text(record)
    completion = completion_text(record)
    present = prompt_tags(prompt)
    parsed = parse_tags(completion, _MAX_ID, max_range=4096)
    if parsed.failed:
        return f"completion names no tag list and no None: {completion[:80]!r}"
    missing = sorted(set(parsed.tags) - present)
    if missing:
        shown = ", ".join(f"<T-{t}>" for t in missing[:10])
        return f"completion names tags absent from the prompt: {shown}"
    is_tag_only = record.get("format") == "tag_only" or TAG_ONLY_PREFIX in completion
    if is_tag_only and present:
        # The runtime parser reads window-local ids 1..n_tags; the answer must survive that reading.
        back = parse_tags(completion, max(present))
        if back.failed or back.tags != parsed.tags:
            return "tag-only completion does not read back through the extractor's parser"
    return None


def check_record(
    record: Any, tokenizer: Any | None, *, max_seq_length: int | None
) -> tuple[str | None, tuple[list[int], list[int]] | None]:
    """``(problem, encoded)``: the first problem found (None when the record is good) and its tokens."""
    try:
        record_parts(record)
    except RecordError as exc:
        return str(exc), None
    problem = check_tags(record)
    if problem:
        return problem, None
    if tokenizer is None:
        return None, None
    try:
        ids, labels = encode_record(record, tokenizer)
    except RecordError as exc:
        return str(exc), None
    if max_seq_length is not None and len(ids) > max_seq_length:
        return f"prompt + completion is {len(ids)} tokens, longer than max_seq_length={max_seq_length}", None
    return None, (ids, labels)


@dataclass
class ValidationReport:
    path: str
    total: int = 0
    good: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    max_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "total": self.total,
            "good": self.good,
            "bad": [{"line": n, "problem": p} for n, p in self.bad],
            "max_tokens": self.max_tokens,
        }


def validate_file(
    path: str | Path,
    tokenizer: Any | None,
    *,
    max_seq_length: int | None,
    write_good: str | Path | None = None,
) -> ValidationReport:
    """Check every line of a JSONL file; optionally write the good records to ``write_good``."""
    report = ValidationReport(str(path))
    out = open(write_good, "w", encoding="utf-8") if write_good else None
    try:
        for row in json_lines(path):
            line, record = row.number, row.value
            report.total += 1
            if row.problem is not None:
                problem, encoded = row.problem, None
            else:
                problem, encoded = check_record(record, tokenizer, max_seq_length=max_seq_length)
            if problem:
                log.warning("%s:%d: %s", path, line, problem)
                report.bad.append((line, problem))
                continue
            report.good += 1
            if encoded is not None:
                report.max_tokens = max(report.max_tokens, len(encoded[0]))
            if out is not None:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if out is not None:
            out.close()
    return report
