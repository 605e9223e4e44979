"""The article-extraction benchmark's body metric, re-implemented from its description.

Source: scrapinghub/article-extraction-benchmark (MIT), "Article extraction benchmark: open-source
libraries and commercial services". A text is cut into tokens (runs of ``\\w``, case kept) and the
tokens into 4-token shingles (a text shorter than 4 tokens is one shingle of all its tokens; an empty
text has none). Per page, shingles are compared as multisets: TP = the shared count, FP = extra
predicted, FN = missing; the three are divided by their sum so that long pages weigh no more than
short ones. Precision is averaged over the pages with predicted shingles, recall over the pages with
true shingles (a page where both texts are shingle-identical scores 1 on both); F1 is the harmonic
mean of the two averages, and accuracy the share of pages whose token lists are equal.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["PageCounts", "BodyScores", "tokens", "shingles", "page_counts", "body_scores", "score_texts"]

SHINGLE = 4
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class PageCounts:
    """One page's shingle TP/FP/FN, normalised to sum to 1 (all 0 when neither text has a shingle)."""

    tp: float
    fp: float
    fn: float
    exact: bool
    """The two texts have the same tokens."""

    @property
    def precision(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


@dataclass(frozen=True, slots=True)
class BodyScores:
    precision: float
    recall: float
    f1: float
    accuracy: float
    pages: int


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text or "")


def shingles(text: str, n: int = SHINGLE) -> Counter[tuple[str, ...]]:
    words = tokens(text)
    if len(words) < n:
        return Counter([tuple(words)] if words else [])
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def page_counts(true: str, pred: str) -> PageCounts:
    truth, guess = shingles(true), shingles(pred)
    tp = float(sum((truth & guess).values()))
    fp = float(sum((guess - truth).values()))
    fn = float(sum((truth - guess).values()))
    total = tp + fp + fn
    if total:
        tp, fp, fn = tp / total, fp / total, fn / total
    return PageCounts(tp, fp, fn, tokens(true) == tokens(pred))


def body_scores(counts: Iterable[PageCounts]) -> BodyScores:
    """Macro precision/recall over pages (each over the pages where it is defined), F1 of the two."""
    pages = list(counts)
    precisions = [c.precision for c in pages if c.tp + c.fp > 0]
    recalls = [c.recall for c in pages if c.tp + c.fn > 0]
    precision = statistics.mean(precisions) if precisions else 0.0
    recall = statistics.mean(recalls) if recalls else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = statistics.mean(float(c.exact) for c in pages) if pages else 0.0
    return BodyScores(precision, recall, f1, accuracy, len(pages))


def score_texts(truth: Mapping[str, str], predicted: Mapping[str, str]) -> BodyScores:
    """Scores of ``predicted[id]`` against ``truth[id]`` for every id of ``truth`` (missing = empty)."""
    return body_scores(page_counts(truth[key], predicted.get(key, "")) for key in truth)
