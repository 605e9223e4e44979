"""Model-free backends: ``bm25`` (lexical baseline), ``lead`` (first tags) and ``full`` (everything).

They have no tokenizer of their own, so their token accounting uses o200k_base, as the pipeline does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..tokens import default_counter
from ..types import TaggedWindow, WindowSelection
from .base import SyncExtractor
from .call import CallSegments, has_words
from .rules import BM25_RULE
from .scorer import ScorerExtractor, lexical_scores
from .selection import SelectionRule, build_selection

if TYPE_CHECKING:
    from ..settings import Settings

DEFAULT_WINDOW_TOKENS = 2048

class BM25Extractor(ScorerExtractor):
    """Okapi BM25 of each candidate in its context (title and heading), kept by ``BM25_RULE``."""

    name = "bm25"

    def __init__(
        self,
        *,
        window_tokens: int | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        rule: SelectionRule = BM25_RULE,
        neighbours: bool = True,
    ) -> None:
        self._window_tokens = window_tokens or DEFAULT_WINDOW_TOKENS
        self.k1 = k1
        self.b = b
        self.rule = rule
        self.neighbours = neighbours

    @classmethod
    def from_settings(cls, settings: Settings) -> BM25Extractor:
        return cls(window_tokens=settings.window_tokens, neighbours=settings.neighbours)

    def call_scores(self, query: str, call: CallSegments) -> np.ndarray:
        return lexical_scores(query, call, k1=self.k1, b=self.b)


class LeadExtractor(SyncExtractor):
    """Baseline: the first ``n_tags`` segments with words of each document's first window."""

    name = "lead"

    def __init__(self, *, n_tags: int = 5, window_tokens: int | None = None) -> None:
        if n_tags < 0:
            raise ValueError(f"n_tags must be >= 0, got {n_tags}")
        self.n_tags = n_tags
        self._window_tokens = window_tokens or DEFAULT_WINDOW_TOKENS

    @classmethod
    def from_settings(cls, settings: Settings) -> LeadExtractor:
        return cls(window_tokens=settings.window_tokens)

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        if not windows:
            return []
        first: dict[int, int] = {}
        for pos, w in enumerate(windows):
            best = first.get(w.document_index)
            if best is None or w.window_index < windows[best].window_index:
                first[w.document_index] = pos
        leads = set(first.values())
        counter = default_counter()
        q = counter.count(query)
        out = []
        for pos, w in enumerate(windows):
            chosen: dict[int, float] = {}
            if pos in leads:
                tags = [i + 1 for i, t in enumerate(w.plain_texts) if has_words(t)][: self.n_tags]
                # Earlier is better: the score falls with position.
                chosen = {tag: 1.0 / rank for rank, tag in enumerate(tags, start=1)}
            out.append(build_selection(query, w, chosen, counter, query_tokens=q))
        return out


class FullExtractor(SyncExtractor):
    """No extraction: every tag is selected (the reference for token savings)."""

    name = "full"

    def __init__(self, *, window_tokens: int | None = None) -> None:
        self._window_tokens = window_tokens or DEFAULT_WINDOW_TOKENS

    @classmethod
    def from_settings(cls, settings: Settings) -> FullExtractor:
        return cls(window_tokens=settings.window_tokens)

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        counter = default_counter()
        q = counter.count(query)
        return [
            build_selection(query, w, dict.fromkeys(range(1, w.n_tags + 1), 1.0), counter, query_tokens=q)
            for w in windows
        ]
