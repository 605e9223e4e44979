"""Calibrated selection rules of the model-free and embedding scorer backends (``ranker`` keeps its
rule in its model file, ``ranker.json``).

Fitted by ``python -m evals.calibrate`` (report: docs/results/calibration.md) on allowed data only —
HotpotQA dev items outside the bundled evaluation sample, 2WikiMultihopQA dev items and NeedleBench's
``calib`` split built as the ``needle`` suite builds its items, each source counting equally — to
maximise mean tag F1 + 0.1 x negative exact match with at most 10% of each source's content tokens
kept, ranking across every document of a call. Held out (the bundled HotpotQA dev sample as pages,
the ``needle`` suite's items with negatives): ``embedding`` F1 0.419 / negative EM 0.32 and 0.749 /
1.0, ``bm25`` 0.505 / 0.52 and 0.828 / 0.98, ``hybrid`` 0.527 / 0.60 and 0.875 / 1.0 (``ranker``:
0.609 / 0.76 and 0.917 / 1.0).
"""

from __future__ import annotations

from .selection import SelectionRule

EMBEDDING_RULE = SelectionRule(floor=0.46, min_score=0.0, margin=0.3, budget=2, per_document=2)
"""On the cosine in context: the call's best at least 0.46; keep the two best within 0.3 of it."""
BM25_RULE = SelectionRule(floor=0.3, min_score=0.1, margin=0.5, budget=3, per_document=3)
"""On IDF-normalised BM25 in context: the best matches at least 30% of the query's weight; keep
up to three within 0.5 of it."""
HYBRID_WEIGHT = 0.5
"""Share of the MiniLM cosine in the ``hybrid`` score; the rest is BM25 (capped at 1)."""
HYBRID_RULE = SelectionRule(floor=0.4, min_score=0.0, margin=0.1, budget=5, per_document=5)
"""On the hybrid score: the call's best at least 0.4; keep up to five within 0.1 of it."""
