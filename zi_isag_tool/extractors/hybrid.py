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

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..types import TaggedWindow
from .embedding import EmbeddingExtractor
from .lexical import bm25_scores
from .selection import HYBRID_RULE, HYBRID_WEIGHT, SelectionRule, per_window

if TYPE_CHECKING:
    from ..settings import Settings

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
    """all-MiniLM-L6-v2 cosine plus BM25 per segment, kept by the calibrated ``HYBRID_RULE``.

    Same model, token accounting and batching as ``embedding``; BM25's IDF is taken over the
    segments of the call, as the ``bm25`` backend does.
    """

    name = "hybrid"

    def __init__(
        self,
        *,
        device: str = "cpu",
        window_tokens: int | None = None,
        rule: SelectionRule = HYBRID_RULE,
        weight: float = HYBRID_WEIGHT,
        k1: float = 1.2,
        b: float = 0.75,
        batch_size: int = 64,
    ) -> None:
        super().__init__(
            device=device, window_tokens=window_tokens, rule=rule, context_weight=0.0, batch_size=batch_size
        )
        self.weight = _checked_weight(weight)
        self.k1 = k1
        self.b = b

    @classmethod
    def from_settings(cls, settings: Settings) -> HybridExtractor:
        return cls(device=settings.device, window_tokens=settings.window_tokens)

    def window_scores(self, query: str, windows: Sequence[TaggedWindow]) -> list[np.ndarray]:
        flat = [text for w in windows for text in w.plain_texts]
        cosine = self.segment_scores(query, flat)
        combined = hybrid_scores(cosine, bm25_scores(query, flat, k1=self.k1, b=self.b), self.weight)
        return per_window(combined, windows)
