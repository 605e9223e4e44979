"""``hybrid``: the MiniLM cosine and BM25 together, kept by one calibrated rule.

The two scorers miss different things. A sentence embedding ranks "At -15 °C the unit falls to a COP
between 1.8 and 2.2" low for "How efficient are heat pumps when it is very cold?" (numbers and units
carry little of its meaning for the model), while BM25 finds it by its words; BM25 misses
paraphrases the embedding finds. Both score on comparable scales: a cosine, and the share of the
query's IDF weight a segment matches (capped at 1). The hybrid score is their weighted sum, with
the weight and the selection rule calibrated together (``python -m evals.calibrate_embedding``,
report in docs/results/calibration.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .call import CallSegments
from .embedding import EmbeddingExtractor
from .rules import HYBRID_RULE, HYBRID_WEIGHT
from .scorer import DEFAULT_SHORTLIST, lexical_scores, shortlist
from .selection import SelectionRule

if TYPE_CHECKING:
    pass

__all__ = ["HybridExtractor", "hybrid_scores"]


def _checked_weight(weight: float) -> float:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within [0, 1], got {weight}")
    return weight


def hybrid_scores(cosine: np.ndarray, bm25: np.ndarray, weight: float = HYBRID_WEIGHT) -> np.ndarray:
    """``weight * cosine + (1 - weight) * min(bm25, 1)``, NaN where a segment has no words (both
    scorers agree on which those are)."""
    weight = _checked_weight(weight)
    return weight * np.asarray(cosine, dtype=np.float64) + (1.0 - weight) * np.minimum(bm25, 1.0)


class HybridExtractor(EmbeddingExtractor):
    """all-MiniLM-L6-v2 cosine plus BM25 per candidate (both in context), kept by ``HYBRID_RULE``.

    Same model, token accounting and shortlist as ``embedding``; BM25's IDF is taken over the
    candidates of the call.
    """

    name = "hybrid"

    def __init__(
        self,
        *,
        device: str = "cpu",
        window_tokens: int | None = None,
        rule: SelectionRule = HYBRID_RULE,
        weight: float = HYBRID_WEIGHT,
        neighbours: bool = True,
        shortlist_size: int | None = DEFAULT_SHORTLIST,
        k1: float = 1.2,
        b: float = 0.75,
        batch_size: int = 16,
    ) -> None:
        super().__init__(
            device=device,
            window_tokens=window_tokens,
            rule=rule,
            neighbours=neighbours,
            shortlist_size=shortlist_size,
            batch_size=batch_size,
        )
        self.weight = _checked_weight(weight)
        self.k1 = k1
        self.b = b

    def call_scores(self, query: str, call: CallSegments) -> np.ndarray:
        scores = np.full(len(call), np.nan)
        lexical = lexical_scores(query, call, k1=self.k1, b=self.b)
        live = shortlist(lexical, call, self.shortlist_size)
        if live.size:
            cosine = self.segment_scores(query, [call.in_context(int(i)) for i in live])
            scores[live] = hybrid_scores(cosine, lexical[live], self.weight)
        return scores
