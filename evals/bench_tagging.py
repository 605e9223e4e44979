"""Segment-and-tag throughput and boundary quality: zi-isag-tool vs ZI-ISAG's splitter.

``tagging_throughput(texts)`` times, in one process, interleaved round by round (baseline, ours,
ours with token windows, baseline, ...), and reports medians over the rounds:

* the baseline (``evals.baseline_splitter``): ZI-ISAG's split + tag, the document as one window;
* ours, like for like (``speedup_vs_baseline``): ``tag_document`` (segment offsets, then windows:
  each segment's text sliced, the tagged text rendered, look-alikes neutralised, 1024-token windows
  packed, ``TaggedWindow`` records built, their ``segments`` lazy views that build a ``Segment`` when
  read) with each segment's o200k token cost supplied by the caller
  (``costs=``, from ``prompt_costs``, computed once before the timed rounds, as a caller that
  caches counts does). Neither side counts tokens, so both do the same kind of work;
* ours with exact token windows (``speedup_with_token_windows``): ``tag_document``, which also
  counts every segment with o200k_base inside the timed region (tiktoken's BPE then dominates).

Every side then parses the same canonical answer (a few ids and a range, as extractors answer) once
per document, so the parse is a constant, identical on both sides. MB are UTF-8 megabytes of input.
It also scores sentence boundaries of both splitters on ``QUALITY_SET``, a small hand-labelled set
of tricky cases (decimals, URLs, abbreviations, ellipses, CJK, quotes, markdown).

Run: ``python -m evals.bench_tagging [--limit N] [--repeats N]`` (NeedleBench's Paul Graham essays,
bundled with the package, by default).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals.baseline_splitter import baseline_split, baseline_split_and_tag
from zi_isag_tool.datasets import NEEDLEBENCH_DIR
from zi_isag_tool.segment import segment
from zi_isag_tool.tagging import prompt_costs, tag_document
from zi_isag_tool.tokens import default_counter
from zi_isag_tool.types import Document

__all__ = ["tagging_throughput", "segmentation_quality", "QUALITY_SET", "load_haystack"]

DEFAULT_HAYSTACK = NEEDLEBENCH_DIR / "PaulGrahamEssays.jsonl"

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


def _n_tags(windows: Sequence[Any]) -> int:
    """A document's tag count from its last window (as the baseline takes ``len`` of its list)."""
    return windows[-1].first_tag + windows[-1].n_tags - 1 if windows else 0


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
    """Throughput (MB/s, median of ``repeats`` interleaved rounds) of ours vs the baseline, and
    boundary quality of both (see the module docstring for what each side does)."""
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
    documents = [Document(f"doc{i}", text) for i, text in enumerate(texts)]
    # Token costs for the like-for-like side, outside the timed region.
    costs = [prompt_costs(text, segment(text), counter) for text in texts]

    def ours() -> int:
        n = 0
        for i, doc in enumerate(documents):
            windows = tag_document(
                doc, document_index=i, counter=counter, window_tokens=window_tokens, costs=costs[i]
            )
            parse(_n_tags(windows))
            n += len(windows)
        return n

    def ours_token_windows() -> int:
        n = 0
        for i, doc in enumerate(documents):
            windows = tag_document(doc, document_index=i, counter=counter, window_tokens=window_tokens)
            parse(_n_tags(windows))
            n += len(windows)
        return n

    def baseline() -> int:
        n = 0
        for text in texts:
            segs, _tagged = baseline_split_and_tag(text)
            parse(len(segs))
            n += len(segs)
        return n

    sides: dict[str, Callable[[], int]] = {
        "baseline": baseline,
        "ours": ours,
        "ours_token_windows": ours_token_windows,
    }
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    counts: dict[str, int] = {}
    for _ in range(max(1, repeats)):
        for name, fn in sides.items():
            gc.collect()
            w0, c0 = time.perf_counter(), time.process_time()
            counts[name] = fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)

    def mb_s(seconds: float) -> float:
        return round(n_bytes / 1e6 / seconds, 2) if seconds > 0 else float("inf")

    def speedup(times: dict[str, list[float]], name: str) -> float:
        # Median of the per-round ratios: each round times both sides under the same load.
        return round(statistics.median(b / o for b, o in zip(times["baseline"], times[name], strict=True)), 2)

    median = {name: statistics.median(v) for name, v in wall.items()}
    ours_q = segmentation_quality(_our_split)
    base_q = segmentation_quality(baseline_split)
    return {
        "documents": len(texts),
        "megabytes": round(n_bytes / 1e6, 3),
        "window_tokens": window_tokens,
        "rounds": max(1, repeats),
        "baseline_mb_s": mb_s(median["baseline"]),
        "ours_mb_s": mb_s(median["ours"]),
        "speedup_vs_baseline": speedup(wall, "ours"),
        "ours_token_windows_mb_s": mb_s(median["ours_token_windows"]),
        "speedup_with_token_windows": speedup(wall, "ours_token_windows"),
        "cpu_time_speedups": {
            "vs_baseline": speedup(cpu, "ours"),
            "with_token_windows": speedup(cpu, "ours_token_windows"),
        },
        "ours_windows": counts["ours"],
        "ours_token_windows": counts["ours_token_windows"],
        "ours_segments": sum(len(c) for c in costs),
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
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds (medians are reported)")
    ap.add_argument("--window-tokens", type=int, default=1024)
    args = ap.parse_args(argv)
    texts = load_haystack(args.data, args.limit)
    result = tagging_throughput(texts, repeats=args.repeats, window_tokens=args.window_tokens)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
