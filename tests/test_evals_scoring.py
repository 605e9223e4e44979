"""Scoring functions against hand-computed values."""

from __future__ import annotations

import pytest

from evals.scoring import (
    ItemScore,
    aggregate,
    group_runs,
    negative_em,
    negative_lenient,
    read_gold_tags,
    tag_prf,
)


def test_prf_partial_overlap() -> None:
    # selected {2,3,4}, gold {3,4,5,6}: hits 2 -> P 2/3, R 2/4, F1 = 2PR/(P+R) = 4/7
    prf = tag_prf([2, 3, 4], [3, 4, 5, 6])
    assert prf.precision == pytest.approx(2 / 3)
    assert prf.recall == pytest.approx(0.5)
    assert prf.f1 == pytest.approx(4 / 7)


def test_prf_duplicates_count_once() -> None:
    prf = tag_prf([3, 3, 3, 9], [3, 3])
    assert (prf.precision, prf.recall) == (pytest.approx(0.5), 1.0)
    assert prf.f1 == pytest.approx(2 / 3)


def test_prf_exact_and_disjoint_and_empty() -> None:
    assert tag_prf([1, 2], [2, 1]).f1 == 1.0
    assert tag_prf([7], [1, 2]) == tag_prf([], [1, 2])
    assert tag_prf([], [1, 2]).f1 == 0.0
    assert tag_prf([], [1, 2]).precision == 0.0


def test_negative_scores() -> None:
    assert negative_em([]) == 1.0
    assert negative_em([4]) == 0.0
    # ZI-ISAG's lenient score: 1 - 2 selected / 8 tags
    assert negative_lenient([1, 5, 5], 8) == pytest.approx(0.75)
    assert negative_lenient([], 8) == 1.0
    assert negative_lenient([], 0) == 1.0


def test_read_gold_tags_ranges_both_orders_and_formats() -> None:
    assert read_gold_tags("#Extracted Information Tag#: [[<T-14>], [<T-15>], [<T-16>]]") == {14, 15, 16}
    assert read_gold_tags("[[<T-3>~<T-5>], [<T-9> ~ <T-7>], <T-3>]") == {3, 4, 5, 7, 8, 9}
    info = ["#Extracted Information#:\n1. Text one.[<T-2>]\n2. Text 3. two.[<T-4>~<T-5>]"]
    assert read_gold_tags(info) == {2, 4, 5}
    assert read_gold_tags("#Extracted Information Tag#: None") == set()
    assert read_gold_tags(None) == set()


def test_group_runs() -> None:
    assert group_runs([7, 1, 2, 3, 3, 9, 10]) == [[1, 2, 3], [7], [9, 10]]
    assert group_runs([]) == []


def test_aggregate_by_hand() -> None:
    scores = [
        # P 1/2 R 1 F1 2/3
        ItemScore("a", frozenset({1}), frozenset({1, 2}), 10, content_tokens=100, kept_tokens=20, n_windows=1, output_tokens=10),
        # P 0 R 0 F1 0 (nothing selected)
        ItemScore("b", frozenset({4, 5}), frozenset(), 10, content_tokens=300, kept_tokens=0, n_windows=2, output_tokens=8),
        # negative, nothing selected: em 1, lenient 1
        ItemScore("c", frozenset(), frozenset(), 4, content_tokens=50, kept_tokens=0, n_windows=1, output_tokens=6),
        # negative, 1 of 4 selected: em 0, lenient 0.75
        ItemScore("d", frozenset(), frozenset({2}), 4, content_tokens=50, kept_tokens=5, n_windows=1, output_tokens=8),
    ]
    m = aggregate(scores, errors=2)
    assert m["tag_precision"] == pytest.approx(0.25)
    assert m["tag_recall"] == pytest.approx(0.5)
    assert m["tag_f1"] == pytest.approx(1 / 3)
    assert m["negative_em"] == pytest.approx(0.5)
    assert m["negative_lenient"] == pytest.approx(0.875)
    assert m["context_token_ratio"] == pytest.approx(25 / 500)
    assert m["output_tokens"] == pytest.approx(32 / 5)
    assert (m["n_items"], m["n_positive"], m["n_negative"], m["errors"]) == (4, 2, 2, 2)


def test_aggregate_without_negatives_or_items() -> None:
    m = aggregate([ItemScore("a", frozenset({1}), frozenset({1}), 3)])
    assert m["negative_em"] is None and m["tag_f1"] == 1.0
    empty = aggregate([])
    assert empty["tag_f1"] is None and empty["context_token_ratio"] is None and empty["n_items"] == 0
