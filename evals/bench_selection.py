"""Selection benchmark: latency of a call over long pages, and what the shortlist costs in accuracy.

1. **Latency.** Three long pages (about 85k content tokens together, essays from the bundled
   NeedleBench haystack under markdown headings, a needle set inserted into the second page) go
   through ``Pipeline.extract_documents`` — tagging, scoring, selection, assembly — with the default
   extractor, warm (model loaded, one call before timing; median of ``--repeats`` calls). The
   baseline, timed in the same process, is the model scoring every candidate (no shortlist), which
   is what the ``embedding`` default did before the shortlist. Reported: seconds per call and their
   ratio. The CLI's cold start (``zi-isag extract`` over the three pages as files, a new process
   loading the model) is timed too. Then the same call over 1, 3 and 6 such pages (``--scan``), to
   show how latency grows with page size: with the shortlist only the cheap lexical pass grows;
   without it (timed up to 3 pages) the model's encoding grows with every candidate.
2. **Accuracy cost of the shortlist.** Tag F1 / negative EM with the shortlist and without it on
   (a) the bundled HotpotQA sample as pages, each item padded with paragraphs of other items so
   that a call holds several hundred candidates (more than the shortlist), and (b) NeedleBench
   ``eval`` items of 8k-12k tokens. The target is a loss of at most 0.01 F1.

Run: ``python -m evals.bench_selection [--extractor ranker] [--repeats 3] [--pad 60] [--scan 1 3 6] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from zi_isag_tool.datasets import HOTPOTQA_DEV_SAMPLE
from zi_isag_tool.datasets.needlebench import NeedleBench, insert_needles, spread_depths
from zi_isag_tool.pipeline import Pipeline
from zi_isag_tool.settings import Settings
from zi_isag_tool.tokens import default_counter
from zi_isag_tool.types import Document

from .extractors import ExtractorPool
from .loaders import EvalItem, load_hotpotqa, load_needlebench
from .suites import Context, EvalConfig, metrics_of, run_items

PAGE_TOKENS = 28_500


def long_pages(
    bench: NeedleBench, n_pages: int = 3, page_tokens: int = PAGE_TOKENS
) -> tuple[str, list[str], list[Document]]:
    """``(query, needles, pages)``: essays under ``## title`` headings, about ``page_tokens`` each;
    the second page (the only one, when there is one) holds NeedleBench's largest needle set of at most
    five needles, from 20% deep."""
    counter = default_counter()
    essays = bench.essays
    titles = [f"Essay {i + 1}" for i in range(len(essays))]
    pages: list[Document] = []
    k = 0
    for p in range(n_pages):
        parts: list[str] = [f"# Collected essays, volume {p + 1}\n"]
        tokens = 0
        while tokens < page_tokens:
            essay = essays[k % len(essays)]
            parts.append(f"## {titles[k % len(essays)]}\n\n{essay}\n")
            tokens += counter.count(essay)
            k += 1
        pages.append(Document(f"volume-{p + 1}.md", "\n".join(parts), f"Collected essays, volume {p + 1}"))
    needle_set = max(bench.needle_sets, key=lambda s: len(s.needles) if len(s.needles) <= 5 else 0)
    target = min(1, n_pages - 1)
    text, spans = insert_needles(pages[target].text, list(needle_set.needles), spread_depths(20.0, len(needle_set.needles)))
    pages[target] = replace(pages[target], text=text)
    return needle_set.request, [text[a:b] for a, b in spans], pages


def time_calls(
    pipeline: Pipeline, query: str, pages: Sequence[Document], needles: Sequence[str], repeats: int
) -> dict[str, Any]:
    result = pipeline.extract_documents(query, pages)  # warm: model loaded, caches filled
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = pipeline.extract_documents(query, pages)
        seconds.append(time.perf_counter() - started)
    return {
        "seconds": round(statistics.median(seconds), 3),
        "content_tokens": result.tokens.content,
        "passages": len(result.passages),
        "kept_tokens": result.tokens.kept,
        "needles_found": sum(any(n in p.text for p in result.passages) for n in needles),
        "needles": len(needles),
    }


def cold_start(extractor: str, query: str, pages: Sequence[Document]) -> float:
    """Wall seconds of one ``zi-isag extract`` process over the pages written as files."""
    with tempfile.TemporaryDirectory() as tmp:
        args = []
        for page in pages:
            path = Path(tmp) / page.source
            path.write_text(page.text, encoding="utf-8")
            args += ["--source", str(path)]
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "zi_isag_tool.cli", "extract", query, *args, "--extractor", extractor, "--json"],
            check=True,
            capture_output=True,
        )
        return round(time.perf_counter() - started, 2)


def padded_hotpotqa(pad: int, seed: int = 0) -> list[EvalItem]:
    """The bundled HotpotQA items (and their no-answer twins) as pages, each with ``pad`` paragraphs
    of other items added."""
    items = load_hotpotqa(HOTPOTQA_DEV_SAMPLE, negatives_share=0.2, seed=seed, layout="pages")
    pool: list[tuple[str, tuple[str, ...]]] = []
    for item in items:
        for title, first, last in item.document_parts():
            pool.append((title, item.texts[first:last] if item.texts else ()))
    rng = random.Random(f"pad:{seed}")
    out: list[EvalItem] = []
    for item in items:
        own = {t for t, _, _ in item.document_parts()}
        extra = [p for p in rng.sample(pool, min(len(pool), pad * 2)) if p[0] not in own][:pad]
        texts = tuple(item.texts or ()) + tuple(t for _, ts in extra for t in ts)
        documents = tuple(item.documents or ()) + tuple((title, len(ts)) for title, ts in extra)
        out.append(replace(item, texts=texts, documents=documents, kinds=None))
    return out


def shortlist_cost(spec: str, items: Sequence[EvalItem], shortlist: int | None) -> dict[str, Any]:
    ctx = Context(config=EvalConfig(extractors=[spec], progress=False), pool=ExtractorPool(overrides={"shortlist": shortlist}))
    runs = run_items(ctx, spec, items)
    metrics = metrics_of(runs, ctx.counter)
    return {k: metrics.get(k) for k in ("tag_f1", "negative_em", "context_token_ratio", "n_positive", "n_negative")}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evals.bench_selection", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extractor", default=Settings().extractor, help="the extractor under test (default: the default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pad", type=int, default=60, help="paragraphs of other items added to each HotpotQA item")
    ap.add_argument("--needle-items", type=int, default=60)
    ap.add_argument("--scan", type=int, nargs="*", default=[1, 3, 6], help="page counts of the latency scan")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-selection"))
    args = ap.parse_args(argv)

    bench = NeedleBench()
    query, needles, pages = long_pages(bench)
    shortlisted = Pipeline(extractor=args.extractor)
    everything = Pipeline(extractor=args.extractor, shortlist=None)
    latency: dict[str, Any] = {
        "shortlist": time_calls(shortlisted, query, pages, needles, args.repeats),
        "no_shortlist": time_calls(everything, query, pages, needles, args.repeats),
    }
    latency["speedup"] = round(latency["no_shortlist"]["seconds"] / latency["shortlist"]["seconds"], 2)
    latency["cold_start_cli_seconds"] = cold_start(args.extractor, query, pages)
    by_pages: dict[str, Any] = {}
    for n_pages in args.scan:
        if n_pages == len(pages):  # the call timed above
            by_pages[str(n_pages)] = {"shortlist": latency["shortlist"], "no_shortlist": latency["no_shortlist"]}
            continue
        scan_query, scan_needles, scan_pages = long_pages(bench, n_pages)
        row = {"shortlist": time_calls(shortlisted, scan_query, scan_pages, scan_needles, args.repeats)}
        if n_pages <= 3:
            row["no_shortlist"] = time_calls(everything, scan_query, scan_pages, scan_needles, args.repeats)
        by_pages[str(n_pages)] = row
    latency["by_pages"] = by_pages

    hotpot = padded_hotpotqa(args.pad)
    long_needles = load_needlebench(None, n=args.needle_items, lengths=(8000, 12000), split="eval", seed=7)
    cost: dict[str, Any] = {}
    for name, items in (("hotpotqa_padded", hotpot), ("needlebench_8k_12k", long_needles)):
        with_list = shortlist_cost(args.extractor, items, Settings().shortlist)
        without = shortlist_cost(args.extractor, items, None)
        cost[name] = {
            "shortlist": with_list,
            "no_shortlist": without,
            "f1_loss": round((without["tag_f1"] or 0) - (with_list["tag_f1"] or 0), 4),
        }
    results = {"extractor": args.extractor, "query": query, "latency": latency, "shortlist_cost": cost,
               "candidates_per_call": Settings().shortlist}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
