"""Speed suite: how fast the parts are, in this process, on this machine.

- ``tagging`` (a pseudo-extractor entry): throughput of segment + tag + parse on NeedleBench essay
  text, next to ZI-ISAG's splitter baseline measured in the same process
  (``evals.bench_tagging.tagging_throughput``); keys ``ours_mb_s``, ``baseline_mb_s``,
  ``speedup_vs_baseline``. Without that module, only our own throughput is measured.
- per extractor: ``extract_ms_per_window`` (mean over items, each item's windows in one call, after a
  warm-up call so model loading is excluded; ``load_seconds`` is the warm-up), p50/p95 per item, and
  ``e2e_ms`` — an offline query through ``Pipeline.run`` over the example pages bundled with the
  package (local files: convert, segment, tag, extract, assemble), median of ``--repeats`` runs
  after one warm-up run.
"""

from __future__ import annotations

import importlib
import logging
import statistics
import time
from importlib import resources
from pathlib import Path
from typing import Any

from zi_isag_tool.parser import format_tags, parse_tags
from zi_isag_tool.tagging import tag_document
from zi_isag_tool.types import Document

from ..extractors import counter_of
from ..loaders import EvalItem, from_needle_item
from . import Context, SuiteResult, run_item

logger = logging.getLogger(__name__)

__all__ = ["run", "tagging_speed", "example_sources", "E2E_QUERIES"]

TAGGING_TEXT_CHARS = 400_000
SPEED_ITEMS = 8
SPEED_LENGTH = 4000
E2E_QUERIES = (
    "How efficient are heat pumps when it is very cold outside?",
    "How often should a sourdough starter be fed?",
    "How do installers size a heat pump for a house?",
)


def example_sources() -> list[str]:
    """The example pages bundled with the package (``zi_isag_tool/examples``)."""
    try:
        folder = resources.files("zi_isag_tool") / "examples"
        return sorted(str(Path(str(p))) for p in folder.iterdir() if p.name.endswith((".html", ".md", ".txt")))
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):
        return []


def _own_tagging_speed(texts: list[str], repeats: int, window_tokens: int, ctx: Context) -> dict[str, Any]:
    """Segment + tag + parse throughput without the baseline (when bench_tagging is absent)."""
    size_mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    best = float("inf")
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        for i, text in enumerate(texts):
            windows = tag_document(Document(f"doc{i}", text), document_index=i, counter=ctx.counter, window_tokens=window_tokens)
            for w in windows:
                parse_tags(format_tags(range(1, w.n_tags + 1)), w.n_tags)
        best = min(best, time.perf_counter() - started)
    return {"ours_mb_s": size_mb / best if best > 0 else None, "baseline_mb_s": None, "speedup_vs_baseline": None, "mb": size_mb}


def tagging_speed(ctx: Context, window_tokens: int = 1024) -> dict[str, Any]:
    texts: list[str] = []
    total = 0
    for essay in ctx.bench.essays:
        texts.append(essay)
        total += len(essay)
        if total >= TAGGING_TEXT_CHARS:
            break
    try:
        bench = importlib.import_module("evals.bench_tagging")
    except ImportError:
        logger.warning("evals.bench_tagging is not available: measuring our tagging without the baseline")
        bench = None
    if bench is not None and hasattr(bench, "tagging_throughput"):
        out = dict(bench.tagging_throughput(texts, repeats=ctx.config.repeats, window_tokens=window_tokens))
    else:
        out = _own_tagging_speed(texts, ctx.config.repeats, window_tokens, ctx)
    out.setdefault("chars", total)
    return out


def _speed_items(ctx: Context) -> list[EvalItem]:
    n = min(ctx.config.limit or SPEED_ITEMS, SPEED_ITEMS)
    length = min(SPEED_LENGTH, max(ctx.config.lengths))
    items = ctx.bench.sample(n, lengths=[length], depths=ctx.config.depths, negatives_share=0.0, seed=ctx.config.seed)
    return [from_needle_item(it) for it in items]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def _e2e(ctx: Context, extractor: Any) -> dict[str, Any]:
    from zi_isag_tool.pipeline import Pipeline

    sources = example_sources()
    if not sources:
        return {"e2e_ms": None, "e2e_note": "no example pages bundled"}
    pipeline = Pipeline(extractor=extractor)
    pipeline.run(E2E_QUERIES[0], sources=sources)  # warm-up: first-call imports and caches
    times: list[float] = []
    passages = 0
    for r in range(max(1, ctx.config.repeats)):
        query = E2E_QUERIES[r % len(E2E_QUERIES)]
        started = time.perf_counter()
        result = pipeline.run(query, sources=sources)
        times.append(time.perf_counter() - started)
        passages += len(result.passages)
    return {
        "e2e_ms": statistics.median(times) * 1000,
        "e2e_ms_min": min(times) * 1000,
        "e2e_sources": len(sources),
        "e2e_passages_mean": passages / len(times),
    }


def run(ctx: Context) -> SuiteResult:
    result = SuiteResult(info={"repeats": ctx.config.repeats, "machine_note": "same process, sequential"})
    try:
        result.metrics["tagging"] = tagging_speed(ctx, ctx.config.window_tokens or 1024)
    except Exception as exc:  # the benchmark failing must not hide the other measurements
        logger.warning("tagging throughput failed: %s", exc)
        result.metrics["tagging"] = {"error": f"{type(exc).__name__}: {exc}"}
    items = _speed_items(ctx)
    result.info["latency_items"] = len(items)
    for spec in ctx.config.extractors:
        metrics: dict[str, Any] = {"errors": 0}
        try:
            extractor = ctx.pool.get(spec)
        except Exception as exc:
            result.metrics[spec] = {"error": str(exc), "errors": 0}
            continue
        per_window: list[float] = []
        windows = 0
        total = 0.0
        for k, item in enumerate(ctx.progress(items, f"speed:{spec}")):
            try:
                run = run_item(ctx, extractor, item)
            except Exception as exc:
                metrics["errors"] += 1
                logger.warning("speed item %s failed under %s: %s", item.id, spec, exc)
                continue
            if k == 0:  # warm-up: model loading and first-call costs
                metrics["load_seconds"] = run.seconds
                run = run_item(ctx, extractor, item)
            n = max(1, len(run.windows))
            per_window.append(run.seconds / n)
            windows += len(run.windows)
            total += run.seconds
        metrics.update(
            {
                "extract_ms_per_window": total / windows * 1000 if windows else None,
                "extract_ms_per_window_p50": (_percentile(per_window, 0.5) or 0) * 1000 if per_window else None,
                "extract_ms_per_window_p95": (_percentile(per_window, 0.95) or 0) * 1000 if per_window else None,
                "windows": windows,
                "window_tokens": extractor.window_tokens,
                "counter": counter_of(extractor).name,
            }
        )
        try:
            metrics.update(_e2e(ctx, extractor))
        except Exception as exc:
            metrics["errors"] += 1
            metrics["e2e_error"] = f"{type(exc).__name__}: {exc}"
        result.metrics[spec] = metrics
    return result
