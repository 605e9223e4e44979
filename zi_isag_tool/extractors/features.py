"""What the ``ranker`` knows about a candidate sentence: relevance signals in context, as features.

On real pages every paragraph is on topic, so a sentence's own similarity to the question says
little; what separates the answer is how the sentence, its title and its page relate to the
question together. The features combine, per shortlisted candidate:

- MiniLM cosine of the sentence in context ("title › heading: sentence") and of its context alone
  (the sentence alone is not encoded: a second encoding per candidate doubles the cost of a call
  for little);
- BM25 of the sentence alone and in context (IDF-normalised, capped);
- how much of the title/heading the question names;
- where the sentence sits in its section (lead sentences carry the definition of the subject);
- how its section (the part of a page under one heading, or a whole page without headings) compares
  with the call's others (best score, rank) and how the sentence compares with the call's best, its
  section's best and its neighbours;
- whether the section's name is named by the call's best sections (the second hop of a multi-hop
  question is a page the first one names);
- the candidate's rank in the call by each score, the size of its section and its own length.

No feature is a statistic of the shortlist as a whole (a mean, a spread): the model scores long pages
through the shortlist and short ones whole, and must read a sentence the same way in both.

The training code (``evals.calibrate``) computes them with this same function, so what the model
was fitted on is what it sees at run time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .bm25 import tokenize
from .call import CallSegments

__all__ = ["FEATURE_NAMES", "Signals", "ranker_features"]

FEATURE_NAMES: tuple[str, ...] = (
    "cos_context",
    "cos_title",
    "has_context",
    "lexical_text",
    "lexical_context",
    "title_coverage",
    "title_named",
    "lead",
    "inverse_position",
    "section_best",
    "section_lexical_best",
    "gap_to_best",
    "gap_to_section_best",
    "section_rank_first",
    "section_rank_second",
    "previous",
    "next",
    "named_by_best_sections",
    "rank",
    "lexical_rank",
    "section_size",
    "length",
)

LEXICAL_CAP = 1.5
"""BM25 shares above this add nothing (a sentence repeating the query's words is not more relevant)."""
_PARENTHETICAL = re.compile(r"\s*\([^)]*\)\s*$")


@dataclass(frozen=True, slots=True)
class Signals:
    """Raw scores of the shortlisted candidates ``live`` (flat indices of a ``CallSegments``)."""

    live: np.ndarray
    cos_context: np.ndarray
    cos_title: np.ndarray
    """Cosine of the candidate's context string; 0 where it has none."""
    lexical_text: np.ndarray
    lexical_context: np.ndarray


def _plain_title(title: str) -> str:
    """``"Ed Wood (film)"`` -> ``"ed wood"``: the name a text would use."""
    return _PARENTHETICAL.sub("", title).strip().casefold()


def _inverse_rank(values: np.ndarray) -> np.ndarray:
    """``1 / (1 + rank)`` of each value in the call, best first (ties: reading order)."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return 1.0 / (1.0 + ranks)


def ranker_features(query: str, call: CallSegments, signals: Signals) -> np.ndarray:
    """One row of ``FEATURE_NAMES`` per shortlisted candidate, in ``signals.live`` order."""
    live = signals.live
    n = live.size
    if n == 0:
        return np.zeros((0, len(FEATURE_NAMES)))
    cos_context = signals.cos_context
    lexical_text = np.minimum(np.nan_to_num(signals.lexical_text), LEXICAL_CAP)
    lexical_context = np.minimum(np.nan_to_num(signals.lexical_context), LEXICAL_CAP)
    contexts = [call.context(int(i)) for i in live]
    has_context = np.array([bool(c) for c in contexts], dtype=np.float64)

    query_terms = set(tokenize(query))
    query_folded = " ".join(query.casefold().split())
    coverage: dict[str, float] = {}
    named: dict[str, float] = {}
    for context in set(contexts):
        terms = set(tokenize(context))
        coverage[context] = len(terms & query_terms) / len(terms) if terms else 0.0
        titles = [t for t in (_plain_title(p) for p in context.split(" › ")) if t]
        named[context] = float(any(t in query_folded for t in titles))
    title_coverage = np.array([coverage[c] for c in contexts])
    title_named = np.array([named[c] for c in contexts])

    position = call.section_position[live].astype(np.float64)
    sections = call.section[live]
    section_best = np.zeros(n)
    section_lexical_best = np.zeros(n)
    strength: dict[int, float] = {}
    for section in np.unique(sections).tolist():
        mask = sections == section
        section_best[mask] = cos_context[mask].max()
        section_lexical_best[mask] = lexical_context[mask].max()
        strength[section] = float(cos_context[mask].max() + 0.5 * lexical_context[mask].max())
    ranked = sorted(strength, key=lambda s: -strength[s])
    rank_of = {s: r for r, s in enumerate(ranked)}
    rank = np.array([rank_of[int(s)] for s in sections])

    # Neighbours in reading order; a neighbour outside the shortlist counts as unrelated (0).
    score_of = dict(zip(live.tolist(), cos_context.tolist(), strict=True))
    before = call.previous[live]
    previous = np.array([score_of.get(int(b), 0.0) for b in before])
    following = {int(b): int(i) for i, b in zip(live.tolist(), before.tolist(), strict=True) if b >= 0}
    nxt = np.array([score_of.get(following.get(int(i), -1), 0.0) for i in live])

    # The second hop: a section whose name the best two sections' candidates mention.
    best_sections = ranked[:2]
    best_text = {s: " ".join(call.texts[int(i)] for i in live[sections == s]).casefold() for s in best_sections}
    names = {int(s): _plain_title(call.section_name(int(i))) for s, i in zip(sections.tolist(), live.tolist(), strict=True)}
    named_by_best = np.array(
        [
            float(bool(names[int(s)]) and any(names[int(s)] in best_text[b] for b in best_sections if b != int(s)))
            for s in sections
        ]
    )
    # Over every candidate of the section, not only the shortlisted ones: the same page gives the same
    # value however much of it the shortlist kept.
    sizes = np.bincount(call.section[call.candidate], minlength=int(call.section.max()) + 1)
    section_size = np.log1p(np.array([sizes[int(s)] for s in sections], dtype=np.float64))
    length = np.log1p(np.array([len(call.texts[int(i)].strip()) for i in live], dtype=np.float64))

    return np.column_stack(
        [
            cos_context,
            signals.cos_title,
            has_context,
            lexical_text,
            lexical_context,
            title_coverage,
            title_named,
            (position == 0).astype(np.float64),
            1.0 / (1.0 + position),
            section_best,
            section_lexical_best,
            cos_context - float(cos_context.max()),
            cos_context - section_best,
            (rank == 0).astype(np.float64),
            (rank == 1).astype(np.float64),
            previous,
            nxt,
            named_by_best,
            _inverse_rank(cos_context),
            _inverse_rank(lexical_context),
            section_size,
            length,
        ]
    ).astype(np.float64)
