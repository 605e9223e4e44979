"""Segment-and-tag throughput and boundary quality: zi-isag-tool vs ZI-ISAG's splitter.

``tagging_throughput(texts)`` times, in one process and interleaved (best of ``repeats``):

* ours: ``segment`` + ``build_windows`` (o200k token counts, ``default_counter()``) + ``parse_tags`` of
  a canonical answer per window (a few ids and a range, as extractors answer);
* ours without token counting: ``segment`` + ``render_tagged`` of the whole document (the same work
  the baseline does);
* the baseline (``evals.baseline_splitter``): split + tag + the same parse, the document as one window.

MB are UTF-8 megabytes of input. It also scores sentence boundaries of both splitters on
``QUALITY_SET``, a small hand-labelled set of tricky cases (decimals, URLs, abbreviations, ellipses,
CJK, quotes, markdown).

Run: ``python -m evals.bench_tagging [--limit N]`` (NeedleBench's Paul Graham essays by default).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals.baseline_splitter import baseline_split, baseline_split_and_tag
from zi_isag_tool.segment import segment
from zi_isag_tool.tagging import build_windows, render_tagged
from zi_isag_tool.tokens import default_counter

__all__ = ["tagging_throughput", "segmentation_quality", "QUALITY_SET", "load_haystack"]

DEFAULT_HAYSTACK = Path("/work/shared/data/needlebench/PaulGrahamEssays.jsonl")

# Each item is the gold segmentation: joined, the pieces give the text; a boundary follows each piece
# but the last. Whitespace between sentences starts the next piece.
QUALITY_SET: tuple[tuple[str, ...], ...] = (
    ("Pi is roughly 3.14159.", " It has been computed to 1.5 trillion digits."),
    ("The price rose by 2.5% in Q3.", " Analysts expected 1.9%."),
    ("Visit https://example.com/docs/v1.2/index.html for details.", " The page is long."),
    ("Write to jane.doe@example.org today.", " She answers quickly."),
    ("Mr. Smith met Dr. Jones at 5 p.m. on Monday.", " They talked for an hour."),
    ("Prof. Lee works at Acme Inc. in Boston.", " She teaches physics."),
    ("J. K. Rowling wrote the books.", " They sold well."),
    ("We need fruit, e.g. apples and pears.", " Buy them today."),
    ("Wait... what happened?", " Nobody knew."),
    ("He paused… then spoke.", " The room was silent."),
    ('He said "hi."', " She waved back."),
    ('"Is it true?" she asked.', " He nodded."),
    ("Stop!", " Don't move!", " Who's there?"),
    ("See Fig. 3 and No. 7 in the appendix.", " Both are drawn to scale."),
    ("The U.S. economy grew fast.", " Inflation stayed low."),
    ("今天天气很好。", "我们去公园吧！", "你觉得怎么样？"),
    ("「你好。」", "他说。"),
    ("The file is named report.final.pdf now.", " Open it."),
    ("Version 2.0 ships today!", " Upgrade soon."),
    ("# Release notes", "\n\nThe build is faster.", " Tests pass."),
    ("- first item", "\n- second item", "\n\nDone."),
    ("Use the sort.py script.", " It sorts lines."),
)


def _boundaries_from_pieces(text: str, pieces: Sequence[str]) -> set[int]:
    """Content-end offsets of every piece but the last, located in ``text`` (pieces may have lost
    characters, as the baseline's do)."""
    out: set[int] = set()
    pos = 0
    for piece in pieces[:-1]:
        core = piece.strip()
        if not core:
            continue
        found = text.find(core, pos)
        if found < 0:
            continue
        pos = found + len(core)
        out.add(pos)
    return out


def segmentation_quality(split: Callable[[str], Sequence[str]]) -> dict[str, float]:
    """Boundary precision/recall/F1 of ``split`` (text -> pieces) over ``QUALITY_SET``."""
    tp = fp = fn = 0
    exact = 0
    for gold_pieces in QUALITY_SET:
        text = "".join(gold_pieces)
        gold = _boundaries_from_pieces(text, gold_pieces)
        got = _boundaries_from_pieces(text, list(split(text)))
        tp += len(gold & got)
        fp += len(got - gold)
        fn += len(gold - got)
        exact += gold == got
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "exact_items": exact,
        "items": len(QUALITY_SET),
    }


def _our_split(text: str) -> list[str]:
    return [text[s.start : s.end] for s in segment(text)]


def load_haystack(path: Path = DEFAULT_HAYSTACK, limit: int | None = None) -> list[str]:
    texts: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                texts.append(json.loads(line)["text"])
            if limit is not None and len(texts) >= limit:
                break
    return texts


def tagging_throughput(texts: list[str], *, repeats: int = 3, window_tokens: int = 1024) -> dict[str, Any]:
    """Throughput (MB/s, best of ``repeats``) of ours vs the baseline, and boundary quality of both."""
    notes: list[str] = []
    try:
        from zi_isag_tool.parser import format_tags, parse_tags
    except ImportError:  # the parser is optional for this benchmark
        parse_tags = format_tags = None  # type: ignore[assignment]
        notes.append("zi_isag_tool.parser not importable: the parse step was skipped for both")

    def parse(n_tags: int) -> None:
        # A typical tag-only answer: a few ids and one range, e.g. [[<T-1>~<T-3>], [<T-9>], [<T-17>]].
        if parse_tags is not None and n_tags:
            parse_tags(format_tags({1, 2, 3, (n_tags + 1) // 2, n_tags}), n_tags)

    counter = default_counter()
    counter.count("warm up")
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)

    def ours() -> int:
        n = 0
        for i, text in enumerate(texts):
            windows = build_windows(
                text, segment(text), document_index=i, counter=counter, window_tokens=window_tokens
            )
            for w in windows:
                parse(w.n_tags)
            n += len(windows)
        return n

    def ours_no_count() -> int:
        n = 0
        for text in texts:
            segs = segment(text)
            render_tagged([text[s.start : s.end] for s in segs])
            parse(len(segs))
            n += len(segs)
        return n

    def baseline() -> int:
        n = 0
        for text in texts:
            segs, _tagged = baseline_split_and_tag(text)
            parse(len(segs))
            n += len(segs)
        return n

    best = {"ours": float("inf"), "ours_no_count": float("inf"), "baseline": float("inf")}
    counts: dict[str, int] = {}
    for _ in range(max(1, repeats)):
        for name, fn in (("ours", ours), ("ours_no_count", ours_no_count), ("baseline", baseline)):
            t0 = time.perf_counter()
            counts[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)

    def mb_s(seconds: float) -> float:
        return round(n_bytes / 1e6 / seconds, 2) if seconds > 0 else float("inf")

    ours_q = segmentation_quality(_our_split)
    base_q = segmentation_quality(baseline_split)
    return {
        "documents": len(texts),
        "megabytes": round(n_bytes / 1e6, 3),
        "window_tokens": window_tokens,
        "ours_mb_s": mb_s(best["ours"]),
        "ours_no_count_mb_s": mb_s(best["ours_no_count"]),
        "baseline_mb_s": mb_s(best["baseline"]),
        "speedup_vs_baseline": round(best["baseline"] / best["ours"], 2),
        "speedup_no_count_vs_baseline": round(best["baseline"] / best["ours_no_count"], 2),
        "ours_windows": counts["ours"],
        "ours_segments": counts["ours_no_count"],
        "baseline_segments": counts["baseline"],
        "quality_ours": ours_q,
        "quality_baseline": base_q,
        "quality_at_least_baseline": ours_q["f1"] >= base_q["f1"],
        "notes": notes,
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_HAYSTACK, help="JSONL with a 'text' field")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window-tokens", type=int, default=1024)
    args = ap.parse_args(argv)
    texts = load_haystack(args.data, args.limit)
    result = tagging_throughput(texts, repeats=args.repeats, window_tokens=args.window_tokens)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
