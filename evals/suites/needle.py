"""Needle suite: ZI-ISAG's needle evaluation on NeedleBench English data.

Haystacks (Paul Graham essays) are cut to each context length (default 1k, 2k, 4k, 8k and 12k
tokens, o200k_base) and needles inserted at each depth (0, 25, 50, 75, 100%): per cell, the three
single-needle questions, the four multi-needle sets and ``--hop-items`` HotpotQA-derived multi-hop
items (held-out ``eval`` split by default). See ``evals.needlebench`` for the construction. The
gold tags are the segments holding a needle.

Writes ``needle_heatmap.png``: tag recall per (length, depth) cell, one panel per extractor.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..loaders import EvalItem, from_needle_item, subsample
from ..scoring import ItemScore, mean
from . import Context, SuiteResult, metrics_of
from .query import by_kind

logger = logging.getLogger(__name__)

__all__ = ["needle_items", "run", "heatmap", "plot_heatmaps"]

PLOT_NAME = "needle_heatmap.png"


def needle_items(ctx: Context) -> list[EvalItem]:
    cfg = ctx.config
    items = ctx.bench.grid(
        lengths=cfg.lengths,
        depths=cfg.depths,
        hop_items=cfg.hop_items,
        split=cfg.split,  # type: ignore[arg-type]
        seed=cfg.seed,
    )
    return subsample([from_needle_item(it) for it in items], cfg.limit, cfg.seed)


def heatmap(scores: list[ItemScore], lengths: list[int], depths: list[float]) -> dict[str, Any]:
    """Mean tag recall of the positive items of each (length, depth) cell; None for empty cells."""
    cells: dict[tuple[int, float], list[float]] = defaultdict(list)
    for s in scores:
        if s.negative:
            continue
        key = (int(str(s.meta.get("context_tokens", 0))), float(str(s.meta.get("depth_percent", 0.0))))
        cells[key].append(s.prf.recall)
    grid = [[mean(cells.get((length, float(depth)), [])) for depth in depths] for length in lengths]
    return {"lengths": list(lengths), "depths": [float(d) for d in depths], "tag_recall": grid}


def plot_heatmaps(maps: dict[str, dict[str, Any]], path: Path) -> Path | None:
    if not maps:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 1.2, 3.6), squeeze=False)
    image = None
    for ax, (name, hm) in zip(axes[0], maps.items(), strict=True):
        data = np.array([[np.nan if v is None else v for v in row] for row in hm["tag_recall"]], dtype=float)
        image = ax.imshow(data, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", origin="lower")
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(len(hm["depths"])), [f"{d:g}%" for d in hm["depths"]], fontsize=8)
        ax.set_yticks(range(len(hm["lengths"])), [f"{length // 1000}k" if length % 1000 == 0 else str(length) for length in hm["lengths"]], fontsize=8)
        ax.set_xlabel("needle depth")
        if ax is axes[0][0]:
            ax.set_ylabel("context tokens")
        for (i, j), v in np.ndenumerate(data):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label="tag recall", shrink=0.9)
    fig.suptitle("Needle tag recall (length × depth)", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def run(ctx: Context) -> SuiteResult:
    cfg = ctx.config
    items = needle_items(ctx)
    logger.info("needle: %d items", len(items))
    result = SuiteResult(
        info={
            "lengths": list(cfg.lengths),
            "depths": list(cfg.depths),
            "hop_items_per_cell": cfg.hop_items,
            "split": cfg.split,
            "n_items": len(items),
            "kinds": sorted({it.kind for it in items}),
        }
    )
    maps: dict[str, dict[str, Any]] = {}
    for spec in cfg.extractors:
        runset = ctx.cached_runs(f"needle:{cfg.seed}:{cfg.limit}", spec, items)
        hm: dict[str, Any] = {}

        def extra(scores: list[ItemScore], _hm: dict[str, Any] = hm) -> dict[str, Any]:
            _hm.update(heatmap(scores, cfg.lengths, cfg.depths))
            out = by_kind(scores)
            out["heatmap"] = dict(_hm)
            return out

        result.metrics[spec] = metrics_of(runset, ctx.counter, extra=extra)
        if hm and runset.runs:
            maps[spec] = hm
    plot = plot_heatmaps(maps, ctx.out_dir / PLOT_NAME)
    if plot is not None:
        result.plots.append(plot.name)
    return result


def multi_needle_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The multi-needle row of one extractor's needle metrics (for the report)."""
    kinds = metrics.get("by_kind") or {}
    return dict(kinds.get("multi") or {})
