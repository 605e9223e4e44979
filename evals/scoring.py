"""Scoring of tag selections against gold tags, per item and aggregated.

Conventions (document-level tag numbers, 1-based; duplicates count once):
- positive item (gold not empty): precision, recall and F1 of the selected set; selecting nothing
  scores 0 on all three.
- negative item (gold empty): ``negative_em`` is 1 when nothing is selected, else 0 (strict);
  ``negative_lenient`` is ZI-ISAG's softer score, ``1 - selected / n_tags``.
- aggregates: tag_* are means over positive items, negative_* means over negative items; the
  context token ratio is ``sum(kept) / sum(content)`` over all items (micro), with the per-item mean
  reported beside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "PRF",
    "ItemScore",
    "tag_prf",
    "negative_em",
    "negative_lenient",
    "read_gold_tags",
    "group_runs",
    "score_item",
    "aggregate",
    "mean",
]

# Gold answers in the ZI-ISAG formats name tags as ``<T-i>``; a range is ``<T-i>~<T-j>`` (either order).
_GOLD_RE = re.compile(r"<T-(\d+)>(?:\s*~\s*<T-(\d+)>)?")


@dataclass(frozen=True, slots=True)
class PRF:
    precision: float
    recall: float
    f1: float


def tag_prf(selected: Iterable[int], gold: Iterable[int]) -> PRF:
    """Set precision/recall/F1; an empty selection (or empty gold) scores 0."""
    sel, ref = set(selected), set(gold)
    hit = len(sel & ref)
    if not sel or not ref or not hit:
        return PRF(0.0, 0.0, 0.0)
    p, r = hit / len(sel), hit / len(ref)
    return PRF(p, r, 2 * p * r / (p + r))


def negative_em(selected: Iterable[int]) -> float:
    """1.0 when nothing was selected (the right answer to a question the text cannot answer)."""
    return 0.0 if set(selected) else 1.0


def negative_lenient(selected: Iterable[int], n_tags: int) -> float:
    """ZI-ISAG's negative score: one minus the share of tags selected (1.0 for an empty document)."""
    if n_tags <= 0:
        return 1.0
    return 1.0 - min(len(set(selected)), n_tags) / n_tags


def read_gold_tags(answer: str | Sequence[str] | None) -> set[int]:
    """Tag numbers named in a gold answer (tag-only or info+tag format); ``None`` answers give ``set()``.

    Ranges ``<T-i>~<T-j>`` expand inclusively in either order.
    """
    if answer is None:
        return set()
    text = answer if isinstance(answer, str) else "\n".join(str(a) for a in answer)
    tags: set[int] = set()
    for m in _GOLD_RE.finditer(text):
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        lo, hi = min(a, b), max(a, b)
        tags.update(range(lo, hi + 1))
    tags.discard(0)
    return tags


def group_runs(tags: Iterable[int]) -> list[list[int]]:
    """Consecutive tag numbers grouped: ``[1, 2, 3, 7]`` -> ``[[1, 2, 3], [7]]``."""
    runs: list[list[int]] = []
    for t in sorted(set(tags)):
        if runs and t == runs[-1][-1] + 1:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None


@dataclass(slots=True)
class ItemScore:
    """One item under one extractor."""

    item_id: str
    gold: frozenset[int]
    selected: frozenset[int]
    n_tags: int
    content_tokens: int = 0
    kept_tokens: int = 0
    n_windows: int = 0
    output_tokens: int = 0
    """Tokens of the extractor's answers, summed over the item's windows."""
    failed_windows: int = 0
    kind: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def negative(self) -> bool:
        return not self.gold

    @property
    def prf(self) -> PRF:
        return tag_prf(self.selected, self.gold)


def score_item(item_id: str, selected: Iterable[int], gold: Iterable[int], n_tags: int, **extra: object) -> ItemScore:
    return ItemScore(item_id=item_id, gold=frozenset(gold), selected=frozenset(selected), n_tags=n_tags, **extra)  # type: ignore[arg-type]


def aggregate(scores: Sequence[ItemScore], *, errors: int = 0) -> dict[str, object]:
    """The documented metric keys for one extractor over a set of items."""
    pos = [s for s in scores if not s.negative]
    neg = [s for s in scores if s.negative]
    prfs = [s.prf for s in pos]
    content = sum(s.content_tokens for s in scores)
    kept = sum(s.kept_tokens for s in scores)
    windows = sum(s.n_windows for s in scores)
    return {
        "tag_recall": mean(p.recall for p in prfs),
        "tag_precision": mean(p.precision for p in prfs),
        "tag_f1": mean(p.f1 for p in prfs),
        "negative_em": mean(negative_em(s.selected) for s in neg),
        "negative_lenient": mean(negative_lenient(s.selected, s.n_tags) for s in neg),
        "context_token_ratio": (kept / content) if content else None,
        "context_token_ratio_mean": mean(s.kept_tokens / s.content_tokens for s in scores if s.content_tokens),
        "output_tokens": (sum(s.output_tokens for s in scores) / windows) if windows else None,
        "selected_tags_mean": mean(float(len(s.selected)) for s in scores),
        "gold_tags_mean": mean(float(len(s.gold)) for s in pos),
        "n_items": len(scores),
        "n_positive": len(pos),
        "n_negative": len(neg),
        "n_windows": windows,
        "failed_windows": sum(s.failed_windows for s in scores),
        "errors": errors,
        "content_tokens": content,
        "kept_tokens": kept,
    }
