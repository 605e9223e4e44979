"""The selection design every scorer backend shares: segment scores of a call -> the tags to keep.

Real pages for one question are on topic throughout, and some of them do not answer it. So the
rule ranks across **all documents of the call** rather than within each page: a page that does not
answer gives nothing, a page that answers twice gives both. It keeps, best first,

- nothing at all when the call's best candidate is under ``floor`` (the call abstains);
- only segments at least ``min_score`` and within ``margin`` of the call's best;
- at most ``budget`` segments in the call, and at most ``per_document`` from one document (a guard
  against one long page taking the whole budget).

A kept sentence that cannot stand alone ("He was born in 1950.") carries the sentence before it
(``with_neighbours``), so a passage reads on its own. The constants of each backend's rule come
from ``python -m evals.calibrate`` (report: docs/results/calibration.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..parser import format_tags
from ..tokens import TokenCounter
from ..types import TaggedWindow, WindowSelection
from .call import CallSegments

__all__ = [
    "SelectionRule",
    "select_call",
    "leans_on_previous",
    "with_neighbours",
    "canonical_answer",
    "build_selection",
]


@dataclass(frozen=True, slots=True)
class SelectionRule:
    """Which scored candidates of a call to keep (see the module docstring)."""

    floor: float = -math.inf
    """The call's best score must reach this, or the call selects nothing."""
    min_score: float = -math.inf
    """Every kept segment scores at least this."""
    margin: float = math.inf
    """Every kept segment scores at least ``best - margin``."""
    budget: int = 5
    """Segments kept per call, at most."""
    per_document: int = 3
    """Segments kept per document, at most."""

    def __post_init__(self) -> None:
        if self.budget < 0 or self.per_document < 0:
            raise ValueError(f"budget and per_document must be >= 0, got {self.budget} and {self.per_document}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    @classmethod
    def top_k(cls, k: int, per_document: int | None = None) -> SelectionRule:
        """The fixed top-k baseline over the call: no floor, no margin."""
        return cls(budget=k, per_document=k if per_document is None else per_document)


def select_call(scores: np.ndarray, call: CallSegments, rule: SelectionRule) -> dict[int, float]:
    """``{flat index: score}`` of the candidates ``rule`` keeps. NaN scores and non-candidates are
    never kept; ties keep the earlier segment."""
    scores = np.asarray(scores, dtype=np.float64)
    live = np.flatnonzero(call.candidate & ~np.isnan(scores))
    if live.size == 0 or rule.budget == 0 or rule.per_document == 0:
        return {}
    best = float(scores[live].max())
    if best < rule.floor:
        return {}
    threshold = max(rule.min_score, best - rule.margin)
    order = live[np.argsort(-scores[live], kind="stable")]
    chosen: dict[int, float] = {}
    per_document: dict[int, int] = {}
    for i in order.tolist():
        score = float(scores[i])
        if score < threshold or len(chosen) >= rule.budget:
            break
        document = int(call.document[i])
        if per_document.get(document, 0) >= rule.per_document:
            continue
        per_document[document] = per_document.get(document, 0) + 1
        chosen[i] = score
    return chosen


# A sentence that opens with one of these refers back to the one before it.
_ANAPHORA = re.compile(
    r"""^[\s"'“‘(*_>\-•]*(?:he|she|it|they|his|her|its|their|him|them|this|these|those|such|both|
    the\ (?:latter|former|same|album|film|band|company|city|team|book|song|series|show|game)|
    however|moreover|also|then|there\ (?:he|she|they))\b""",
    re.IGNORECASE | re.VERBOSE,
)


def leans_on_previous(text: str) -> bool:
    """Whether a sentence reads as a continuation (opens with a pronoun or a back-reference)."""
    return bool(_ANAPHORA.match(text))


def with_neighbours(chosen: dict[int, float], call: CallSegments) -> dict[int, float]:
    """``chosen`` plus, for each kept sentence that leans on the previous one, that previous
    candidate of the same section (scored just under it, so a budget keeps the two together)."""
    out = dict(chosen)
    for i, score in chosen.items():
        before = int(call.previous[i])
        if (
            before >= 0
            and before not in out
            and call.candidate[before]
            and call.heading[before] == call.heading[i]
            and leans_on_previous(call.texts[i])
        ):
            out[before] = math.nextafter(score, -math.inf)
    return out


def canonical_answer(tags: Sequence[int]) -> str:
    """The tag-only answer an LLM backend would have written for ``tags``."""
    return format_tags(tags)


def build_selection(
    query: str,
    window: TaggedWindow,
    chosen: dict[int, float],
    counter: TokenCounter,
    *,
    query_tokens: int | None = None,
) -> WindowSelection:
    """A ``WindowSelection`` for a scorer backend: canonical answer string and token accounting."""
    tags = sorted(chosen)
    raw = canonical_answer(tags)
    if query_tokens is None:
        query_tokens = counter.count(query)
    return WindowSelection(
        tags=tags,
        scores={t: chosen[t] for t in tags},
        raw_output=raw,
        prompt_tokens=query_tokens + counter.count(window.tagged_text),
        output_tokens=counter.count(raw),
    )
