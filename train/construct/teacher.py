"""The teacher route, ZI-ISAG's four steps.

1. ``split``: cut raw ``{request, content}`` pages into windows sized like the extractor's and tag them.
2. ``teacher``: ask a teacher model (OpenAI-compatible) for the info+tag answer of every window; the
   tag-only answer is derived from it (``extractTag``), as in ZI-ISAG's ``extract_data`` files.
3. ``check``: ask the teacher again to confirm every positive (is each cited tag right and relevant?)
   and every negative (is there really nothing relevant?); keep only confirmed examples.
4. ``build``: write prompt/completion records in both formats (info+tag and tag-only) with a chosen
   share of negatives and a small eval split, each record validated before it is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zi_isag_tool.errors import InputError
from zi_isag_tool.parser import format_tags, parse_tags
from zi_isag_tool.tokens import TokenCounter

from .records import FORMATS, INFO_NONE, Format, JsonlWriter, iter_valid, make_record, reject_bad
from .teacher_client import TeacherClient
from .validate import check_record

log = logging.getLogger(__name__)

_TAG_RE = re.compile(r"<T-(\d+)>")


def count_tags(tagged: str) -> int:
    ids = [int(x) for x in _TAG_RE.findall(tagged)]
    return max(ids) if ids else 0


def _answer_text(value: Any) -> str:
    # ZI-ISAG stores extractInfoTag as a one-element list of strings.
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


# --- 1. split ------------------------------------------------------------------------------------


def split_records(
    in_path: str | Path,
    out_path: str | Path,
    *,
    counter: TokenCounter,
    window_tokens: int,
    on_bad: str = "skip",
) -> dict[str, int]:
    """Windows of every ``{request, content}`` line, one ``{id, request, tagged_content, n_tags}`` a line."""
    from zi_isag_tool.tagging import tag_document
    from zi_isag_tool.types import Document

    pages = windows = 0
    with JsonlWriter(out_path) as out:
        for line, row in iter_valid(in_path, ("request", "content"), on_bad=on_bad, log=log):
            doc = Document(source=str(row.get("url") or row.get("source") or f"line-{line}"), text=row["content"])
            for w in tag_document(doc, document_index=line, counter=counter, window_tokens=window_tokens):
                out.write(
                    {
                        "id": f"{line}-{w.window_index}",
                        "request": row["request"],
                        "tagged_content": w.tagged_text,
                        "n_tags": w.n_tags,
                        "source": doc.source,
                        "line": line,
                        "window": w.window_index,
                    }
                )
                windows += 1
            pages += 1
    return {"pages": pages, "windows": windows}


# --- 2. teacher ----------------------------------------------------------------------------------


def _tagged_rows(in_path: str | Path, on_bad: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, row in iter_valid(in_path, ("request", "tagged_content"), on_bad=on_bad, log=log):
        row = dict(row)
        row.setdefault("id", f"line-{line}")
        row["n_tags"] = int(row.get("n_tags") or count_tags(row["tagged_content"]))
        if row["n_tags"] < 1:
            reject_bad(f"{in_path}:{line}: tagged_content holds no <T-i> tags", on_bad=on_bad, log=log)
            continue
        rows.append((line, row))
    return rows


def teacher_extract(
    in_path: str | Path, out_path: str | Path, client: TeacherClient, *, on_bad: str = "skip"
) -> dict[str, Any]:
    """Ask the teacher for the info+tag answer of every tagged window (cached, resumable)."""
    from zi_isag_tool.prompts import info_tag_messages

    rows = _tagged_rows(in_path, on_bad)
    answers = client.ask_all([info_tag_messages(r["request"], r["tagged_content"]) for _, r in rows])
    written = unreadable = missing = 0
    with JsonlWriter(out_path) as out:
        for (line, row), answer in zip(rows, answers, strict=True):
            if answer is None:
                missing += 1
                continue
            parsed = parse_tags(answer, row["n_tags"])
            if parsed.failed:
                unreadable += 1
                log.warning("%s:%d: teacher answer has no tag list and no None; dropped", in_path, line)
                continue
            out.write(
                {
                    **row,
                    "extractInfoTag": [answer],
                    "extractTag": format_tags(parsed.tags),
                    "tags": parsed.tags,
                    "dropped_out_of_range": parsed.dropped_out_of_range,
                }
            )
            written += 1
    return {"windows": len(rows), "written": written, "unreadable": unreadable, "missing": missing,
            "teacher": client.stats.to_dict()}


# --- 3. check ------------------------------------------------------------------------------------


def _extracted_rows(in_path: str | Path, on_bad: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for line, row in _tagged_rows(in_path, on_bad):
        if "extractInfoTag" not in row and "extractTag" not in row:
            reject_bad(
                f"{in_path}:{line}: missing field extractInfoTag (run 'construct teacher' first)", on_bad=on_bad, log=log
            )
            continue
        if "tags" not in row:
            source = row.get("extractTag") or _answer_text(row.get("extractInfoTag", ""))
            row["tags"] = parse_tags(source, row["n_tags"]).tags
        rows.append((line, row))
    return rows


def teacher_check(
    in_path: str | Path, out_path: str | Path, client: TeacherClient, *, on_bad: str = "skip"
) -> dict[str, Any]:
    """Double-check positives and negatives with the teacher; write the confirmed rows."""
    from zi_isag_tool.prompts import negative_check_messages, parse_check, positive_check_messages

    rows = _extracted_rows(in_path, on_bad)
    prompts = []
    for _, r in rows:
        if r["tags"]:
            prompts.append(positive_check_messages(r["request"], r["tagged_content"], _answer_text(r["extractInfoTag"])))
        else:
            prompts.append(negative_check_messages(r["request"], r["tagged_content"]))
    answers = client.ask_all(prompts)
    counts = {"positive_kept": 0, "positive_rejected": 0, "negative_kept": 0, "negative_rejected": 0,
              "unclear": 0, "missing": 0}
    with JsonlWriter(out_path) as out:
        for (_, row), answer in zip(rows, answers, strict=True):
            kind = "positive" if row["tags"] else "negative"
            if answer is None:
                counts["missing"] += 1
                continue
            verdict = parse_check(answer)
            if verdict is None:
                counts["unclear"] += 1
                continue
            if not verdict:
                counts[f"{kind}_rejected"] += 1
                continue
            counts[f"{kind}_kept"] += 1
            out.write({**row, "check": "yes"})
    return {**counts, "rows": len(rows), "teacher": client.stats.to_dict()}


# --- 4. build ------------------------------------------------------------------------------------


@dataclass
class BuildConfig:
    formats: Sequence[Format] = FORMATS
    negative_ratio: float = 0.3
    """Largest share of negatives among the examples kept (positives are all kept)."""
    eval_fraction: float = 0.1
    """Share of requests held out for the eval split (a request never lands in both)."""
    max_seq_length: int | None = None
    seed: int = 0
    on_bad: str = "skip"


@dataclass
class BuildReport:
    positives: int = 0
    negatives_available: int = 0
    negatives_kept: int = 0
    train: int = 0
    eval: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "positives": self.positives, "negatives_available": self.negatives_available,
            "negatives_kept": self.negatives_kept, "train": self.train, "eval": self.eval,
            "rejected": self.rejected,
        }


def balance_negatives(
    positives: list[Any], negatives: list[Any], ratio: float, rng: random.Random
) -> tuple[list[Any], list[Any]]:
    """Keep every positive and at most ``ratio`` negatives in the result (seeded sample)."""
    if not 0.0 <= ratio < 1.0:
        raise InputError("negative_ratio must be in [0, 1)")
    want = round(len(positives) * ratio / (1.0 - ratio)) if positives else len(negatives)
    if ratio == 0.0:
        want = 0
    kept = rng.sample(negatives, min(want, len(negatives)))
    return positives, kept


def is_eval(key: str, fraction: float, seed: int) -> bool:
    h = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest(), 16)
    return (h % 10_000) < fraction * 10_000


def write_records(
    records: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    tokenizer: Any | None,
    config: BuildConfig,
    group_key: str = "request",
    report: BuildReport,
) -> BuildReport:
    """Validate and write ``train.jsonl`` / ``eval.jsonl``; bad records are reported (and skipped or fatal)."""
    out = Path(out_dir)
    with JsonlWriter(out / "train.jsonl") as train_out, JsonlWriter(out / "eval.jsonl") as eval_out:
        for rec in records:
            problem, _ = check_record(rec, tokenizer, max_seq_length=config.max_seq_length)
            if problem:
                if config.on_bad == "error":
                    raise InputError(f"record {rec['id']}: {problem}")
                log.warning("record %s rejected: %s", rec["id"], problem)
                report.rejected.append({"id": rec["id"], "problem": problem})
                continue
            key = str(rec["meta"].get(group_key, rec["id"]))
            target = eval_out if is_eval(key, config.eval_fraction, config.seed) else train_out
            target.write(rec)
        report.train, report.eval = train_out.count, eval_out.count
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def build_instruction_set(
    in_path: str | Path, out_dir: str | Path, *, tokenizer: Any | None, config: BuildConfig
) -> BuildReport:
    """Checked (or extracted) teacher rows -> validated prompt/completion records in both formats."""
    rows = _extracted_rows(in_path, config.on_bad)
    rng = random.Random(config.seed)
    pos = [r for _, r in rows if r["tags"]]
    neg = [r for _, r in rows if not r["tags"]]
    report = BuildReport(positives=len(pos), negatives_available=len(neg))
    pos, neg = balance_negatives(pos, neg, config.negative_ratio, rng)
    report.negatives_kept = len(neg)
    chosen = pos + neg
    rng.shuffle(chosen)
    records = []
    for row in chosen:
        for fmt in config.formats:
            info = _answer_text(row.get("extractInfoTag", "")) if row["tags"] else INFO_NONE
            records.append(
                make_record(
                    record_id=f"{row['id']}/{fmt}", fmt=fmt, query=row["request"],
                    tagged_text=row["tagged_content"], n_tags=row["n_tags"], tags=row["tags"],
                    route="teacher", answer=info, meta={"request": row["request"], "source_id": row["id"]},
                )
            )
    return write_records(records, out_dir, tokenizer=tokenizer, config=config, report=report)
