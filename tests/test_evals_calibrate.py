"""The calibration's rule search: each training source counts equally, so a small source whose pages
answer several times is not drowned by a large one whose pages answer once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evals.calibrate import Example, data_source, fit_rule
from evals.loaders import EvalItem
from evals.suites import tag_item
from zi_isag_tool.extractors.call import CallSegments
from zi_isag_tool.tokens import default_counter


def example(source: str, item: EvalItem) -> Example:
    counter = default_counter()
    windows, _, gold, offsets = tag_item(item, counter, 2048)
    call = CallSegments.of(windows)
    tag_of = np.array(
        [offsets[windows[int(w)].document_index] + windows[int(w)].first_tag + int(t) - 1
         for w, t in zip(call.window, call.tag, strict=True)]
    )
    tokens = np.array(counter.count_many(call.texts))
    live = np.flatnonzero(call.candidate)
    empty = np.zeros((len(live), 0))
    return Example(item, source, call, live, empty, np.zeros(len(live), bool), tag_of, tokens, gold, int(tokens.sum()))


def page_item(n: int) -> EvalItem:
    """Two pages; the first answers once, next to two near misses; the second does not answer."""
    texts = tuple(f"Page {n} sentence {k} is here." for k in range(6))
    return EvalItem(f"page-{n}", "question?", "multi_hop", texts=texts, gold_tags=frozenset({1}),
                    documents=(("A", 3), ("B", 3)))


def needle_item(n: int) -> EvalItem:
    """One page holding four answers among six other sentences."""
    texts = tuple(f"Needle {n} sentence {k} is here." for k in range(10))
    return EvalItem(f"needle-{n}", "question?", "multi", texts=texts, gold_tags=frozenset({2, 4, 6, 8}))


def scores_of(ex: Example) -> np.ndarray:
    scores = np.full(len(ex.call), np.nan)
    for i in np.flatnonzero(ex.call.candidate):
        tag = int(ex.tag_of[i])
        if ex.source == "pages":
            scores[i] = {1: 0.5, 2: 0.49, 3: 0.48}.get(tag, 0.1)
        else:
            scores[i] = 0.5 if tag in ex.gold else 0.1
    return scores


def test_a_small_source_counts_as_much_as_a_large_one() -> None:
    examples = [example("pages", page_item(n)) for n in range(20)]
    examples += [example("needles", needle_item(n)) for n in range(2)]
    scores = [scores_of(ex) for ex in examples]
    best = fit_rule(examples, scores, "ranker", neighbours=False, negative_weight=0.0, max_kept=1.0)
    # Pooled by item, keeping two a page would win (20 items at F1 0.67 against 2 at 1.0); per
    # source, the needle pages' four answers are worth the pages' near misses.
    assert best.rule.per_document >= 4 and best.rule.budget >= 4
    assert best.objective == pytest.approx((0.5 + 1.0) / 2)


def test_data_sources_are_named_by_file_or_by_name() -> None:
    assert data_source("runs/hotpot_dev.json") == ("hotpot_dev", Path("runs/hotpot_dev.json"))
    assert data_source("hotpotqa=RPT/data/hotpotqa/dev.jsonl") == ("hotpotqa", Path("RPT/data/hotpotqa/dev.jsonl"))
    assert data_source("odd/na=me.json") == ("na=me", Path("odd/na=me.json"))
