"""Calibrated selection rules of the model-free and embedding scorer backends (``ranker`` keeps its
rule in its model file, ``ranker.json``).

Fitted by ``python -m evals.calibrate`` (report: docs/results/calibration.md) on allowed data only —
HotpotQA dev items outside the bundled evaluation sample, 2WikiMultihopQA dev items and NeedleBench's
``calib`` split — to maximise mean tag F1 + 0.1 x negative exact match with at most 10% of the
content tokens kept, ranking across every document of a call. Held out (the bundled HotpotQA dev
sample as pages, NeedleBench ``eval`` items): ``embedding`` F1 0.447 / negative EM 0.48 and 0.699 / 1.0,
``bm25`` 0.536 / 0.52 and 0.703 / 1.0, ``hybrid`` 0.538 / 0.60 and 0.773 / 1.0 (``ranker``: 0.606 /
0.68 and 0.901 / 0.95).
"""

from __future__ import annotations

from .selection import SelectionRule

EMBEDDING_RULE = SelectionRule(floor=0.52, min_score=0.5, margin=0.2, budget=3, per_document=2)
"""On the cosine in context: the call's best at least 0.52; keep cosines >= 0.5 within 0.2 of it."""
BM25_RULE = SelectionRule(floor=0.3, min_score=0.1, margin=0.5, budget=2, per_document=2)
"""On IDF-normalised BM25 in context: the best matches at least 30% of the query's weight."""
HYBRID_WEIGHT = 0.5
"""Share of the MiniLM cosine in the ``hybrid`` score; the rest is BM25 (capped at 1)."""
HYBRID_RULE = SelectionRule(floor=0.4, min_score=0.0, margin=0.2, budget=3, per_document=2)
"""On the hybrid score: the call's best at least 0.4; keep what is within 0.2 of it."""
