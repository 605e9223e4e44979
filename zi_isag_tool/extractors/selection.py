"""Selection rules shared by the scorer backends: relevance scores of segments -> which to keep.

A fixed top-k keeps k segments whether the page answers the query or not. The rule here keeps a
segment only when its score clears an absolute floor (so a page that does not answer selects
nothing), stays within a margin of the page's best segment and stands out from the page's own score
distribution (z-score); a cap bounds the selection. Scores are pooled per document, not per window,
so the answer does not depend on where the windows were cut.

The constants of each backend's rule were calibrated by ``python -m evals.calibrate_embedding``
(see that module and the comments next to ``EMBEDDING_RULE`` and ``BM25_RULE``).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..parser import format_tags
from ..tokens import TokenCounter
from ..types import TaggedWindow, WindowSelection

_HAS_WORD = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class SelectionRule:
    """Keep segment ``i`` of a pool of scores when all the tests pass, best first, at most ``cap``.

    - ``score >= floor`` (absolute: a pool whose best is under it selects nothing);
    - ``score >= best - margin`` (relative to the pool's best segment);
    - ``(score - mean) / std >= z_min`` over the pool, tested only for pools of ``min_pool_for_z``
      scored segments or more (small pools have no meaningful spread).
    """

    floor: float = -math.inf
    margin: float = math.inf
    z_min: float = -math.inf
    cap: int = 5
    min_pool_for_z: int = 8

    def __post_init__(self) -> None:
        if self.cap < 0:
            raise ValueError(f"cap must be >= 0, got {self.cap}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    @classmethod
    def top_k(cls, k: int) -> SelectionRule:
        """The fixed top-k baseline: no floor, no margin, no z test."""
        return cls(cap=k)


def select(scores: np.ndarray, rule: SelectionRule) -> np.ndarray:
    """Indices (ascending) of the segments ``rule`` keeps; NaN scores are never kept nor counted."""
    scores = np.asarray(scores, dtype=np.float64)
    valid = ~np.isnan(scores)
    if rule.cap == 0 or not valid.any():
        return np.empty(0, dtype=np.int64)
    vals = scores[valid]
    best = float(vals.max())
    keep = valid.copy()
    with np.errstate(invalid="ignore"):
        keep &= scores >= rule.floor
        keep &= scores >= best - rule.margin
        if vals.size >= rule.min_pool_for_z and math.isfinite(rule.z_min):
            std = float(vals.std())
            if std > 0:
                keep &= (scores - float(vals.mean())) / std >= rule.z_min
    idx = np.flatnonzero(keep)
    if idx.size > rule.cap:
        # Best first; stable on ties so earlier segments win.
        order = np.argsort(-scores[idx], kind="stable")[: rule.cap]
        idx = idx[order]
    return np.sort(idx)


def is_scorable(text: str) -> bool:
    """Whether a segment carries words at all (blank lines and rules are never selected)."""
    return bool(_HAS_WORD.search(text))


def per_window(flat: np.ndarray, windows: Sequence[TaggedWindow]) -> list[np.ndarray]:
    """``flat`` (one score per segment of the call, windows in order) as one array per window (views)."""
    bounds = np.cumsum([0, *(w.n_tags for w in windows)])
    return [flat[a:b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]


def document_pools(windows: Sequence[TaggedWindow]) -> list[list[tuple[int, int]]]:
    """Group the call's segments by document, in reading order: ``[(window_pos, tag), ...]`` per document.

    ``window_pos`` is the window's position in ``windows``; ``tag`` is window-local and 1-based.
    """
    by_doc: dict[int, list[int]] = defaultdict(list)
    for pos, window in enumerate(windows):
        by_doc[window.document_index].append(pos)
    pools = []
    for positions in by_doc.values():
        positions.sort(key=lambda p: (windows[p].window_index, p))
        pools.append([(pos, tag) for pos in positions for tag in range(1, windows[pos].n_tags + 1)])
    return pools


def select_by_document(
    windows: Sequence[TaggedWindow], scores: Sequence[np.ndarray], rule: SelectionRule
) -> list[dict[int, float]]:
    """Apply ``rule`` per document to per-window score arrays; returns ``{tag: score}`` per window."""
    chosen: list[dict[int, float]] = [{} for _ in windows]
    for pool in document_pools(windows):
        flat = np.array([scores[pos][tag - 1] for pos, tag in pool], dtype=np.float64)
        for i in select(flat, rule):
            pos, tag = pool[int(i)]
            chosen[pos][tag] = float(flat[i])
    return chosen


def canonical_answer(tags: Sequence[int]) -> str:
    """The tag-only answer an LLM backend would have written for ``tags``."""
    return format_tags(tags)


def build_selection(
    query: str,
    window: TaggedWindow,
    chosen: dict[int, float],
    counter: TokenCounter,
    *,
    query_tokens: int | None = None,
) -> WindowSelection:
    """A ``WindowSelection`` for a scorer backend: canonical answer string and token accounting."""
    tags = sorted(chosen)
    raw = canonical_answer(tags)
    if query_tokens is None:
        query_tokens = counter.count(query)
    return WindowSelection(
        tags=tags,
        scores={t: chosen[t] for t in tags},
        raw_output=raw,
        prompt_tokens=query_tokens + counter.count(window.tagged_text),
        output_tokens=counter.count(raw),
    )


# --- calibrated constants -------------------------------------------------------------------------
# Obtained by `python -m evals.calibrate_embedding` (report: docs/results/calibration.md): a grid search
# maximising tag F1 + negative exact match (kept tokens <= 15%) on the calibration split (the
# NeedleBench multi-hop items with evals.needlebench.split_of(id) == "calib", as needles in Paul Graham
# essay haystacks of 1k-12k tokens, each with a no-answer twin), ties broken towards the tightest
# margin, the weakest z test and the smallest cap. Held-out multi-hop split (3,248 items): embedding
# F1 0.866 / negative EM 0.975, bm25 0.871 / 0.944, hybrid 0.915 / 0.988, all keeping ~0.5% of the
# content tokens (fixed top-2 with MiniLM: F1 0.899, negative EM 0).
CONTEXT_WEIGHT = 0.0
"""Neighbour context (0.1-0.5 tried) lowered F1 on needles, which have no related neighbours by
construction; FACTS.md reports it helping on HotpotQA paragraphs: worth re-checking on such data."""
EMBEDDING_RULE = SelectionRule(floor=0.38, margin=0.4, cap=3)
"""Cosine at least 0.38 and within 0.4 of the document's best, at most 3 segments per document."""
BM25_RULE = SelectionRule(floor=0.15, margin=0.5, cap=3)
"""On IDF-normalised BM25: at least 15% of the query's weight matched, within 0.5 of the best."""
HYBRID_WEIGHT = 0.5
"""Share of the MiniLM cosine in the ``hybrid`` score; the rest is BM25 as above (capped at 1)."""
HYBRID_RULE = SelectionRule(floor=0.25, margin=0.5, cap=4)
"""On the hybrid score: at least 0.25 and within 0.5 of the document's best, at most 4 segments."""
