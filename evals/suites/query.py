"""Query suite: does the extractor select the gold segments, and nothing when there are none?

Inputs: ``--format hotpotqa`` (HotpotQA distractor JSON; supporting-fact sentences are the gold),
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

__all__ = ["query_items", "run", "by_kind"]


def query_items(ctx: Context) -> list[EvalItem]:
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
    )


def dataset_key(ctx: Context) -> str:
    cfg = ctx.config
    return f"query:{cfg.format}:{cfg.data}:{cfg.limit}:{cfg.seed}"


def by_kind(scores: list[ItemScore]) -> dict[str, Any]:
    groups: dict[str, list[ItemScore]] = defaultdict(list)
    for s in scores:
        groups[s.kind or "item"].append(s)
    keys = ("tag_recall", "tag_precision", "tag_f1", "negative_em", "context_token_ratio", "n_positive", "n_negative")
    if len(groups) < 2:
        return {}
    return {"by_kind": {k: {m: aggregate(v)[m] for m in keys} for k, v in sorted(groups.items())}}


def run(ctx: Context) -> SuiteResult:
    items = query_items(ctx)
    logger.info("query: %d items (%s)", len(items), ctx.config.format)
    result = SuiteResult(
        info={
            "format": ctx.config.format,
            "data": ctx.config.data,
            "n_items": len(items),
            "n_negative_items": sum(1 for it in items if it.negative),
        }
    )
    for spec in ctx.config.extractors:
        runset = ctx.cached_runs(dataset_key(ctx), spec, items)
        result.metrics[spec] = metrics_of(runset, ctx.counter, extra=by_kind)
    return result
