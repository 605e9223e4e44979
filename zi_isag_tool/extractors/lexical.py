"""Model-free backends: ``bm25`` (lexical baseline), ``lead`` (first tags) and ``full`` (everything).

They have no tokenizer of their own, so their token accounting uses o200k_base, as the pipeline does.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..tokens import default_counter
from ..types import TaggedWindow, WindowSelection
from .base import SyncExtractor
from .selection import BM25_RULE, SelectionRule, build_selection, is_scorable, per_window, select_by_document

if TYPE_CHECKING:
    from ..settings import Settings

DEFAULT_WINDOW_TOKENS = 2048

# Han, kana, Hangul: no spaces between words, so these runs are indexed as character bigrams.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN_RE = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+")
_CJK_RE = re.compile(rf"[{_CJK}]")

# Common English function words (plus contraction tails left by splitting on "'").
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she should
    so some such than that the their theirs them themselves then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you
    your yours yourself yourselves s t d ll m re ve also did does
    """.split()
)


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens without English stopwords; CJK runs become character bigrams."""
    out: list[str] = []
    for match in _TOKEN_RE.finditer(text.lower()):
        tok = match.group()
        if _CJK_RE.match(tok):
            out.extend([tok] if len(tok) == 1 else [tok[i : i + 2] for i in range(len(tok) - 1)])
        elif tok not in STOPWORDS and tok.strip("_"):
            out.append(tok)
    return out


def bm25_scores(query: str, texts: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Okapi BM25 of each text for ``query``, IDF over ``texts``, divided by the query's IDF mass.

    The division makes scores comparable across queries (about the share of the query's weight a
    segment matches), which is what lets one absolute floor reject pages that do not answer.
    NaN for texts without words.
    """
    scores = np.full(len(texts), np.nan, dtype=np.float64)
    terms = sorted(set(tokenize(query)))
    live = [i for i, t in enumerate(texts) if is_scorable(t)]
    if not live:
        return scores
    if not terms:
        scores[live] = 0.0
        return scores
    col = {t: j for j, t in enumerate(terms)}
    tf = np.zeros((len(live), len(terms)), dtype=np.float64)
    lengths = np.zeros(len(live), dtype=np.float64)
    for row, i in enumerate(live):
        toks = tokenize(texts[i])
        lengths[row] = len(toks)
        for tok, n in Counter(toks).items():
            j = col.get(tok)
            if j is not None:
                tf[row, j] = n
    n_docs = len(live)
    df = (tf > 0).sum(axis=0)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    avgdl = max(float(lengths.mean()), 1.0)
    norm = k1 * (1.0 - b + b * lengths / avgdl)
    raw = (idf * tf * (k1 + 1.0) / (tf + norm[:, None])).sum(axis=1)
    scores[live] = raw / float(idf.sum())
    return scores


class BM25Extractor(SyncExtractor):
    """Okapi BM25 over the segments of the call, kept by the calibrated ``BM25_RULE``."""

    name = "bm25"

    def __init__(
        self,
        *,
        window_tokens: int | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        rule: SelectionRule = BM25_RULE,
    ) -> None:
        self._window_tokens = window_tokens or DEFAULT_WINDOW_TOKENS
        self.k1 = k1
        self.b = b
        self.rule = rule

    @classmethod
    def from_settings(cls, settings: Settings) -> BM25Extractor:
        return cls(window_tokens=settings.window_tokens)

    def window_scores(self, query: str, windows: Sequence[TaggedWindow]) -> list[np.ndarray]:
        flat = [text for w in windows for text in w.plain_texts]
        return per_window(bm25_scores(query, flat, k1=self.k1, b=self.b), windows)

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        if not windows:
            return []
        chosen = select_by_document(windows, self.window_scores(query, windows), self.rule)
        counter = default_counter()
        q = counter.count(query)
        return [
            build_selection(query, w, c, counter, query_tokens=q)
            for w, c in zip(windows, chosen, strict=True)
        ]


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
                tags = [i + 1 for i, t in enumerate(w.plain_texts) if is_scorable(t)][: self.n_tags]
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
