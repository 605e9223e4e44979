"""Format loaders and the NeedleBench item builder, on small fixtures written for the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.loaders import EvalItem, default_data_path, load_hotpotqa, load_items, load_zi_isag, subsample
from zi_isag_tool.datasets import HOTPOTQA_DEV_SAMPLE, UPSTREAM_EXAMPLES_DIR
from zi_isag_tool.datasets.needlebench import (
    NeedleBench,
    gold_tags,
    insert_needles,
    normalize_needle,
    sentence_boundaries,
    split_of,
    spread_depths,
)
from zi_isag_tool.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "evals"
UPSTREAM = UPSTREAM_EXAMPLES_DIR


# --- HotpotQA ---------------------------------------------------------------------------------


def test_hotpotqa_positives_segments_and_gold() -> None:
    items = load_hotpotqa(FIXTURES / "hotpotqa_mini.json", negatives_share=0.0)
    assert [it.id for it in items] == ["mini-1", "mini-2", "mini-3"]
    first = items[0]
    assert first.texts is not None and first.gold_tags is not None
    # title heading, 2 sentences, title, 3 sentences, title, 2 sentences
    assert len(first.texts) == 10
    assert first.texts[0] == "Lantern Clock Museum\n"
    assert first.texts[2].startswith(" It holds") and first.texts[2].endswith("\n\n")
    gold_text = sorted(first.texts[t - 1].strip() for t in first.gold_tags)
    assert gold_text == ["The Lantern Clock Museum is a small museum in Brackenford.", "The river Weller flows through Brackenford."]
    assert first.gold_tags == frozenset({2, 6})
    assert items[1].gold_tags == frozenset({3, 5, 7})
    assert not any(it.negative for it in items)


def test_hotpotqa_negatives_drop_gold_paragraphs() -> None:
    items = load_hotpotqa(FIXTURES / "hotpotqa_mini.json", negatives_share=0.4, seed=1)
    negatives = [it for it in items if it.negative]
    assert len(items) == 5 and len(negatives) == 2  # round(3 * 0.4 / 0.6) = 2
    for neg in negatives:
        assert neg.id.endswith("/neg") and neg.gold_tags == frozenset()
        base = next(it for it in items if it.id == neg.id.removesuffix("/neg"))
        assert base.texts is not None and neg.texts is not None
        gold_sentences = {base.texts[t - 1].strip() for t in base.gold_tags or ()}
        assert not gold_sentences & {t.strip() for t in neg.texts}
    # same seed, same items
    again = load_hotpotqa(FIXTURES / "hotpotqa_mini.json", negatives_share=0.4, seed=1)
    assert [it.id for it in again] == [it.id for it in items]


def test_hotpotqa_rejects_bad_records(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"question": "q", "context": "not a list"}]')
    with pytest.raises(InputError):
        load_hotpotqa(bad)


# --- ZI-ISAG ------------------------------------------------------------------------------------


def test_zi_isag_fixture_records() -> None:
    items = load_zi_isag(FIXTURES / "zi_isag_mini.jsonl")
    by_query = {it.query: it for it in items}
    # the info+tag duplicate of the first record is merged; the record without gold is skipped
    assert len(items) == 3
    market = by_query["When does the Brackenford market open?"]
    assert market.gold_tags == frozenset({2, 3}) and market.texts is not None and len(market.texts) == 5
    assert market.texts[2] == " Stalls open at seven in the morning."
    assert by_query["Who painted the harbour mural?"].negative
    chat = by_query["When did the Copper Hollow mines close?"]
    assert chat.gold_tags == frozenset({1, 2}) and chat.texts == (
        "Copper Hollow is a village.", " Its mines closed in 1952.", " A festival is held there each May."
    )


def test_zi_isag_upstream_examples() -> None:
    items = load_zi_isag(UPSTREAM)
    by_query = {it.query: it for it in items}
    assert by_query["How is the Desmann smart door lock?"].gold_tags == frozenset({14, 15, 16})
    assert by_query["How is the Huawei smart door lock?"].negative
    for it in items:
        assert it.texts is not None and len(it.texts) == 16
    # the instruction files (prompt/chosen) hold the same items as the teacher file
    prompts_only = load_zi_isag(UPSTREAM / "instruction_set_zi-isag_example_data_train.jsonl")
    assert {it.query: it.gold_tags for it in prompts_only} == {it.query: it.gold_tags for it in items}


def test_load_items_errors_and_subsample(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_items("hotpotqa", tmp_path / "missing.json")
    with pytest.raises(InputError):
        load_items("csv", tmp_path)
    items = [EvalItem(id=str(i), query="q", kind="x", texts=("a",), gold_tags=frozenset({1})) for i in range(10)]
    picked = subsample(items, 4, seed=3)
    assert [it.id for it in picked] == [it.id for it in subsample(items, 4, seed=3)]
    assert len(picked) == 4 and [int(it.id) for it in picked] == sorted(int(it.id) for it in picked)
    assert subsample(items, None, 0) == items


def test_every_format_defaults_to_its_bundled_data() -> None:
    assert default_data_path("hotpotqa") == HOTPOTQA_DEV_SAMPLE
    hotpot = load_items("hotpotqa", None, negatives_share=0.0)
    assert len(hotpot) == 100 and all(it.gold_tags for it in hotpot)
    assert default_data_path("zi-isag") == UPSTREAM
    assert load_items("zi-isag", None)
    needles = load_items("needlebench", None, limit=3, lengths=[1000], depths=[50.0], negatives_share=0.0)
    assert len(needles) == 3 and all(it.gold_spans for it in needles)


# --- NeedleBench builder ------------------------------------------------------------------------

HAYSTACK = (
    "Mr. Smith went home. He was tired! Was he hungry? Yes, he was.\n\n"
    "A new paragraph starts here. It has 3.5 sentences of text. The end."
)


def test_split_of_is_the_shared_rule() -> None:
    import hashlib

    for item_id in ("5ab3f9b95542992ade7c6f09", "x", "abc"):
        calib = int(hashlib.sha256(item_id.encode()).hexdigest(), 16) % 10 < 3
        assert split_of(item_id) == ("calib" if calib else "eval")
    ids = [f"id-{i}" for i in range(2000)]
    share = sum(split_of(i) == "calib" for i in ids) / len(ids)
    assert 0.25 < share < 0.35


def test_sentence_boundaries_and_normalize() -> None:
    bounds = sentence_boundaries(HAYSTACK)
    starts = {HAYSTACK[b : b + 4] for b in bounds if b < len(HAYSTACK)}
    assert {"He w", "Was ", "Yes,", "A ne", "It h", "The "} <= starts
    assert "Smit" not in starts  # "Mr." is an abbreviation
    assert normalize_needle(" the key is  under the mat ") == "The key is under the mat."
    assert normalize_needle("Is it 'The Unique'") == "Is it 'The Unique'."
    assert normalize_needle("Done!") == "Done!"


def test_spread_depths() -> None:
    assert spread_depths(0, 4) == [0, 25, 50, 75]
    assert spread_depths(50, 2) == [50, 75]
    assert spread_depths(100, 3) == [100, 100, 100]


def test_insert_needles_spans_and_positions() -> None:
    needles = ["the key is under the mat", "The door is blue."]
    text, spans = insert_needles(HAYSTACK, needles, [0, 100])
    assert [text[s:e] for s, e in spans] == ["The key is under the mat.", "The door is blue."]
    assert text.startswith("The key is under the mat. Mr. Smith")
    assert text.endswith("The end. The door is blue.")
    mid, mid_spans = insert_needles(HAYSTACK, ["Needle one.", "Needle two."], [50, 50])
    (s1, _), (s2, _) = mid_spans
    assert mid[s1:s1 + 11] == "Needle one." and s1 < s2  # same boundary keeps the given order
    assert mid[s1 - 1] in " \n" and mid[s2 + 11] == " "
    # the text outside the needles is unchanged
    assert mid.replace("Needle one. ", "").replace("Needle two. ", "") == HAYSTACK


def test_gold_tags_overlap_rule() -> None:
    text = "aaa bbb. Needle here. ccc."
    segments = [(0, 8), (8, 21), (21, 26)]
    assert gold_tags(segments, [(9, 21)], text) == {2}
    # a segment sharing only whitespace with the needle span is not gold
    assert gold_tags(segments, [(8, 9)], text) == set()
    assert gold_tags(segments, [(5, 12)], text) == {1, 2}


def test_needlebench_items_are_deterministic_and_sized() -> None:
    nb = NeedleBench()
    assert len(nb.needle_sets) == 4 and len(nb.single_needles()) == 3
    assert all(split_of(it.id) == "eval" for it in nb.multi_hop("eval"))
    ns = nb.needle_sets[3]
    item = nb.build_item(ns.needles, ns.request, context_tokens=2000, depth_percent=25, seed=7)
    again = NeedleBench().build_item(ns.needles, ns.request, context_tokens=2000, depth_percent=25, seed=7)
    assert item == again
    assert item.needles == [normalize_needle(n) for n in ns.needles]
    assert 1800 <= nb.counter.count(item.text) <= 2000
    assert item.needle_spans[0][0] >= int(0.2 * len(item.text))
    grid = nb.grid(lengths=[1000], depths=[0, 50], hop_items=1, negatives_share=0.25, seed=1)
    kinds = [it.kind for it in grid if not it.negative]
    assert kinds.count("single") == 6 and kinds.count("multi") == 8 and kinds.count("multi_hop") == 2
    negatives = [it for it in grid if it.negative]
    assert len(negatives) == 5 and all(not it.needle_spans for it in negatives)
    assert [it.id for it in grid] == [it.id for it in nb.grid(lengths=[1000], depths=[0, 50], hop_items=1, negatives_share=0.25, seed=1)]
