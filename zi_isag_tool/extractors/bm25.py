"""Okapi BM25 over short texts, normalised by the query's IDF mass so one floor works across queries.

Pure functions, no model: the ``bm25`` backend, the lexical half of ``hybrid``, the ranker's lexical
features and the shortlist that bounds the model's work per call all use them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .call import has_words

__all__ = ["STOPWORDS", "tokenize", "bm25_scores"]


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
    live = [i for i, t in enumerate(texts) if has_words(t)]
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
