"""Calibrated selection rules of the model-free and embedding scorer backends (``ranker`` keeps its
rule in its model file, ``ranker.json``).

Fitted by ``python -m evals.calibrate`` (report: docs/results/calibration.md) on allowed data only —
HotpotQA dev items outside the bundled evaluation sample, 2WikiMultihopQA dev items and NeedleBench's
``calib`` split, each source counting equally — to maximise mean tag F1 + 0.1 x negative exact match
with at most 10% of each source's content tokens kept, ranking across every document of a call.
Held out (the bundled HotpotQA dev sample as pages, NeedleBench ``eval`` items): ``embedding`` F1
0.423 / negative EM 0.28 and 0.893 / 1.0, ``bm25`` 0.556 / 0.12 and 0.874 / 0.90, ``hybrid`` 0.532 /
0.60 and 0.871 / 1.0 (``ranker``: 0.617 / 0.72 and 0.951 / 0.97).
"""

from __future__ import annotations

import math

from .selection import SelectionRule

EMBEDDING_RULE = SelectionRule(floor=0.42, min_score=0.0, margin=math.inf, budget=2, per_document=2)
"""On the cosine in context: when the call's best reaches 0.42, keep its two best candidates."""
BM25_RULE = SelectionRule(floor=0.15, min_score=0.0, margin=0.5, budget=2, per_document=2)
"""On IDF-normalised BM25 in context: the best matches at least 15% of the query's weight; keep
what is within 0.5 of it."""
HYBRID_WEIGHT = 0.5
"""Share of the MiniLM cosine in the ``hybrid`` score; the rest is BM25 (capped at 1)."""
HYBRID_RULE = SelectionRule(floor=0.38, min_score=0.0, margin=math.inf, budget=2, per_document=2)
"""On the hybrid score: when the call's best reaches 0.38, keep its two best candidates."""
