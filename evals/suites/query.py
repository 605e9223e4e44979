"""Query suite: does the extractor select the gold segments, and nothing when there are none?

Inputs: ``--format hotpotqa`` (HotpotQA distractor JSON; supporting-fact sentences are the gold; its
paragraphs are presented as separate pages of one call and, as a second layout, as one document),
``--format zi-isag`` (ZI-ISAG tagged content with gold tag answers) or ``--format needlebench``
(needles in NeedleBench haystacks; gold = the segments holding a needle). See ``evals.loaders``.

Metrics per extractor: ``tag_recall``, ``tag_precision``, ``tag_f1`` (means over items with gold),
``negative_em`` (strict: share of no-gold items where nothing was selected), ``negative_lenient``
(ZI-ISAG's ``1 - selected / tags``, for comparison), ``context_token_ratio``, ``output_tokens``,
and the same recall/precision/F1 per item kind (``by_kind``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from ..loaders import EvalItem, load_items
from ..scoring import ItemScore, aggregate
from . import Context, SuiteResult, metrics_of

logger = logging.getLogger(__name__)

SUMMARY_KEYS = (
    "tag_recall", "tag_precision", "tag_f1", "negative_em", "context_token_ratio", "n_positive", "n_negative",
)  # fmt: skip

__all__ = ["query_items", "run", "by_kind", "layouts_of", "SUMMARY_KEYS"]


def query_items(ctx: Context, layout: str | None = None) -> list[EvalItem]:
    cfg = ctx.config
    return load_items(
        cfg.format,
        cfg.data,
        limit=cfg.limit,
        seed=cfg.seed,
        negatives_share=cfg.negatives_share,
        lengths=cfg.lengths,
        depths=cfg.depths,
        split=cfg.split,  # type: ignore[arg-type]
        layout=(layout or cfg.layouts[0]),  # type: ignore[arg-type]
    )


def dataset_key(ctx: Context, layout: str | None = None) -> str:
    cfg = ctx.config
    return f"query:{cfg.format}:{cfg.data}:{cfg.limit}:{cfg.seed}:{layout or cfg.layouts[0]}"


def layouts_of(ctx: Context) -> list[str]:
    """The document layouts the suite runs: HotpotQA's paragraphs as pages and as one document;
    one layout for the other formats."""
    return list(ctx.config.layouts) if ctx.config.format == "hotpotqa" else [ctx.config.layouts[0]]


def by_kind(scores: list[ItemScore]) -> dict[str, Any]:
    groups: dict[str, list[ItemScore]] = defaultdict(list)
    for s in scores:
        groups[s.kind or "item"].append(s)
    if len(groups) < 2:
        return {}
    return {"by_kind": {k: {m: aggregate(v)[m] for m in SUMMARY_KEYS} for k, v in sorted(groups.items())}}


def run(ctx: Context) -> SuiteResult:
    layouts = layouts_of(ctx)
    result = SuiteResult(info={"format": ctx.config.format, "data": ctx.config.data, "layouts": layouts})
    for n, layout in enumerate(layouts):
        items = query_items(ctx, layout)
        logger.info("query: %d items (%s, %s)", len(items), ctx.config.format, layout)
        if n == 0:
            result.info["n_items"] = len(items)
            result.info["n_negative_items"] = sum(1 for it in items if it.negative)
        for spec in ctx.config.extractors:
            runset = ctx.cached_runs(dataset_key(ctx, layout), spec, items)
            metrics = metrics_of(runset, ctx.counter, extra=by_kind)
            if n == 0:
                # The first layout (``pages`` for HotpotQA: the real case) gives the headline metrics.
                result.metrics[spec] = metrics
            if len(layouts) > 1 and "error" not in metrics:
                summary = {m: metrics.get(m) for m in SUMMARY_KEYS}
                result.metrics[spec].setdefault("by_layout", {})[layout] = summary
    return result
