"""Convert suite: the HTML -> text stage against hand-annotated article bodies.

Data (``--data DIR``, required): a folder in the layout of scrapinghub/article-extraction-benchmark
(MIT): ``html/ID.html.gz`` (gzip, UTF-8) and ``ground-truth.json`` (``{ID: {"articleBody", "url"}}``).
A clone of that repository is such a folder. Scored with the benchmark's own metric
(``evals.article_metric``: 4-token shingles, macro precision/recall, F1 of the two).

Converters, each on the same pages in the same process:
- ``zi-isag``: the project's conversion as the pipeline runs it (links as words, targets aside);
- ``zi-isag+links``: the same with ``keep_links`` (markdown ``[words](url)``): what link targets cost;
- ``trafilatura``: ``trafilatura.extract(html, url=..., include_comments=False)``, the library alone.

Speed: every page goes through every converter in a rotating order, ``--repeats`` times; a page's
time is its fastest repeat. ``time_vs_trafilatura`` is the sum of those times over trafilatura's.

Kept tokens: each page's ``<title>`` is its query (a fixed query set); every ``--extractor`` selects
passages from the ``zi-isag`` text and from the ``zi-isag+links`` text, and the passage tokens
(o200k_base) are summed: how much links cost what an agent reads.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zi_isag_tool.errors import InputError
from zi_isag_tool.types import Document
from zi_isag_tool.web.convert import ConvertOptions, convert_html, decode_body, html_title

from ..article_metric import score_texts
from . import Context, SuiteResult

logger = logging.getLogger(__name__)

__all__ = ["ArticlePage", "load_pages", "CONVERTERS", "run"]

OURS, OURS_LINKS, BASELINE = "zi-isag", "zi-isag+links", "trafilatura"
LAYOUT = "html/ID.html.gz and ground-truth.json ({ID: {articleBody, url}}), the article-extraction-benchmark layout"


@dataclass(frozen=True, slots=True)
class ArticlePage:
    id: str
    url: str | None
    html: str
    body: str
    """The hand-annotated article body."""


def load_pages(folder: str | Path, *, limit: int | None = None, seed: int = 0) -> tuple[list[ArticlePage], list[str]]:
    """The pages of a benchmark folder (a seeded sample of ``limit``) and the ids without an HTML file."""
    root = Path(folder)
    truth_path = root / "ground-truth.json"
    if not truth_path.is_file() or not (root / "html").is_dir():
        raise InputError(f"{root} is not an article-extraction folder: expected {LAYOUT}")
    try:
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"could not read {truth_path}: {exc}") from exc
    if not isinstance(truth, dict) or not all(isinstance(v, dict) for v in truth.values()):
        raise InputError(f"{truth_path} must map page ids to {{'articleBody': ..., 'url': ...}}")
    ids = sorted(truth)
    if limit is not None and limit < len(ids):
        ids = sorted(random.Random(seed).sample(ids, limit))
    pages: list[ArticlePage] = []
    missing: list[str] = []
    for page_id in ids:
        path = root / "html" / f"{page_id}.html.gz"
        try:
            html = decode_body(gzip.decompress(path.read_bytes()), "text/html; charset=utf-8")
        except (OSError, EOFError, gzip.BadGzipFile):
            missing.append(page_id)
            continue
        record = truth[page_id]
        pages.append(ArticlePage(page_id, record.get("url"), html, str(record.get("articleBody") or "")))
    if not pages:
        raise InputError(f"no readable page in {root / 'html'}: expected {LAYOUT}")
    return pages, missing


def _trafilatura(page: ArticlePage) -> str:
    import trafilatura

    return trafilatura.extract(page.html, url=page.url, include_comments=False) or ""


CONVERTERS: dict[str, Callable[[ArticlePage], str]] = {
    OURS: lambda page: convert_html(page.html, url=page.url).text,
    OURS_LINKS: lambda page: convert_html(page.html, url=page.url, options=ConvertOptions(keep_links=True)).text,
    BASELINE: _trafilatura,
}


def _convert_all(ctx: Context, pages: list[ArticlePage]) -> tuple[dict[str, dict[str, str]], dict[str, list[float]], dict[str, int]]:
    names = list(CONVERTERS)
    texts: dict[str, dict[str, str]] = {name: {} for name in names}
    best: dict[str, list[float]] = {name: [float("inf")] * len(pages) for name in names}
    errors = dict.fromkeys(names, 0)
    repeats = max(1, ctx.config.repeats)
    for name in names:  # warm-up: imports and first-call caches are not a page's cost
        try:
            CONVERTERS[name](pages[0])
        except Exception:  # noqa: BLE001 - counted below, on the timed call
            pass
    for repeat in range(repeats):
        for i, page in enumerate(ctx.progress(pages, f"convert {repeat + 1}/{repeats}")):
            shift = (i + repeat) % len(names)  # rotate, so no converter always runs on a warm cache
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                try:
                    text = CONVERTERS[name](page)
                except Exception as exc:  # a converter failing on a page scores it as empty
                    text = ""
                    if repeat == 0:
                        errors[name] += 1
                        logger.warning("%s failed on %s: %s: %s", name, page.id, type(exc).__name__, exc)
                best[name][i] = min(best[name][i], time.perf_counter() - started)
                texts[name].setdefault(page.id, text)
    return texts, best, errors


def _kept_tokens(ctx: Context, pages: list[ArticlePage], texts: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Passage tokens per extractor for the links-dropped and links-kept texts, one title query per page."""
    from zi_isag_tool.pipeline import Pipeline

    out: dict[str, dict[str, Any]] = {}
    for spec in ctx.config.extractors:
        try:
            pipeline = Pipeline(extractor=ctx.pool.get(spec))
        except Exception as exc:
            out[spec] = {"error": str(exc)}
            continue
        kept = {OURS: 0, OURS_LINKS: 0}
        for page in ctx.progress(pages, f"kept tokens: {spec}"):
            query = html_title(page.html) or page.id
            for name in kept:
                result = pipeline.extract_documents(query, [Document(page.id, texts[name][page.id], query)])
                kept[name] += sum(ctx.counter.count(p.text) for p in result.passages)
        out[spec] = {
            "links_dropped": kept[OURS],
            "links_kept": kept[OURS_LINKS],
            "reduction": 1 - kept[OURS] / kept[OURS_LINKS] if kept[OURS_LINKS] else None,
        }
    return out


def run(ctx: Context) -> SuiteResult:
    if not ctx.config.data:
        raise InputError(
            "the convert suite needs --data DIR: a folder with " + LAYOUT
            + " (for example a clone of github.com/scrapinghub/article-extraction-benchmark)"
        )
    pages, missing = load_pages(ctx.config.data, limit=ctx.config.limit, seed=ctx.config.seed)
    logger.info("convert: %d pages from %s", len(pages), ctx.config.data)
    texts, seconds, errors = _convert_all(ctx, pages)
    truth = {page.id: page.body for page in pages}
    baseline_seconds = sum(seconds[BASELINE])
    result = SuiteResult(
        info={"data": ctx.config.data, "pages": len(pages), "missing_html": len(missing), "repeats": ctx.config.repeats}
    )
    for name in CONVERTERS:
        scores = score_texts(truth, texts[name])
        total = sum(seconds[name])
        result.metrics[name] = {
            "f1": scores.f1,
            "precision": scores.precision,
            "recall": scores.recall,
            "accuracy": scores.accuracy,
            "pages": scores.pages,
            "errors": errors[name],
            "pages_per_s": len(pages) / total if total else None,
            "ms_per_page": 1000 * total / len(pages),
            "time_vs_trafilatura": total / baseline_seconds if baseline_seconds else None,
            "content_tokens": sum(ctx.counter.count(t) for t in texts[name].values()),
        }
    linked = result.metrics[OURS_LINKS]["content_tokens"]
    result.info["link_token_share"] = round(1 - result.metrics[OURS]["content_tokens"] / linked, 4) if linked else None
    result.metrics[OURS]["kept_tokens"] = _kept_tokens(ctx, pages, texts)
    return result
