"""The base of the scorer backends (``ranker``, ``embedding``, ``hybrid``, ``bm25``).

A scorer backend gives every candidate segment of a call a relevance score; the shared rule of
``selection.py`` keeps the best across all documents; the answer is written as the canonical tag
list an LLM backend would have written. Backends that run a model score only a shortlist: BM25 over
every candidate (in its context) is cheap, and the model sees the best ``shortlist_size`` of them,
so the cost of a call is bounded by that size, not by the size of the pages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..tokens import default_counter
from ..types import TaggedWindow, WindowSelection
from .base import SyncExtractor
from .bm25 import bm25_scores
from .call import CallSegments
from .selection import SelectionRule, build_selection, select_call, with_neighbours

__all__ = ["ScorerExtractor", "lexical_scores", "shortlist", "DEFAULT_SHORTLIST"]

DEFAULT_SHORTLIST = 256
"""Candidates a model scores per call. On HotpotQA (about 40 candidates a call) nothing is cut;
on long pages it bounds the encoder's work (see docs/results/calibration.md for its cost)."""


def lexical_scores(
    query: str, call: CallSegments, *, in_context: bool = True, k1: float = 1.2, b: float = 0.75
) -> np.ndarray:
    """BM25 of every candidate's text (in its context unless ``in_context`` is False), IDF over the
    call's candidates; NaN elsewhere."""
    scores = np.full(len(call), np.nan)
    live = np.flatnonzero(call.candidate)
    if live.size:
        texts = [call.in_context(int(i)) if in_context else call.texts[int(i)] for i in live]
        scores[live] = bm25_scores(query, texts, k1=k1, b=b)
    return scores


def shortlist(lexical: np.ndarray, call: CallSegments, size: int | None) -> np.ndarray:
    """Flat indices (ascending) of the ``size`` candidates with the best ``lexical`` score, ties
    in reading order; every candidate when ``size`` is None or not exceeded."""
    live = np.flatnonzero(call.candidate)
    if size is None or live.size <= size:
        return live
    best = np.argsort(-np.nan_to_num(lexical[live], nan=-1.0), kind="stable")[:size]
    return np.sort(live[best])


class ScorerExtractor(SyncExtractor):
    """Score the call's candidates (``call_scores``), keep them by ``rule``, add leaned-on neighbours."""

    rule: SelectionRule
    neighbours: bool = True
    ranks_whole_call = True
    """Selection ranks across documents: the pipeline hands over every window of a call at once."""

    def call_scores(self, query: str, call: CallSegments) -> np.ndarray:
        """One score per segment of ``call`` (higher is better); NaN where not scored."""
        raise NotImplementedError

    def choose(self, query: str, windows: Sequence[TaggedWindow]) -> list[dict[int, float]]:
        """``{window-local tag: score}`` per window: what this backend keeps."""
        call = CallSegments.of(windows)
        chosen = select_call(self.call_scores(query, call), call, self.rule)
        if self.neighbours:
            chosen = with_neighbours(chosen, call)
        return call.per_window(chosen, len(windows))

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        if not windows:
            return []
        chosen = self.choose(query, windows)
        counter = self.token_counter or default_counter()
        query_tokens = counter.count(query)
        return [
            build_selection(query, w, c, counter, query_tokens=query_tokens)
            for w, c in zip(windows, chosen, strict=True)
        ]
