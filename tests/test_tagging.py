"""Tag look-alike neutralisation, token-bounded windows, and offsets that map back to the source."""

from __future__ import annotations

import dataclasses
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zi_isag_tool.errors import ConfigError, InputError
from zi_isag_tool.parser import parse_tags
from zi_isag_tool.segment import SegmentView, segment
from zi_isag_tool.tagging import (
    build_windows,
    count_texts,
    neutralize_tags,
    prompt_costs,
    render_tagged,
    restore_tags,
    tag_cost,
    tag_document,
    window_cost,
    windows_from_texts,
)
from zi_isag_tool.tokens import default_counter
from zi_isag_tool.types import Document, TaggedWindow

# What a tag parser could read: ASCII or full-width brackets, optional slash, T, dash, digits.
LOOKALIKE = re.compile(r"[<\[＜［]\s*[/／]?\s*[TtＴｔ]\s*[-－]\s*[\d０-９]+\s*[>\]＞］]", re.IGNORECASE)

LOOKALIKE_FRAGMENTS = [
    "<T-3>", "</T-3>", "<t-3>", "< T - 3 >", "< / T-12 >", "＜Ｔ－３＞", "＜／Ｔ－３＞", "[T-3]", "[t - 9]",
    "【T-3】", "《T-4》", "〈T-2〉", "<T-1>~<T-3>", "T-7", "AT-4", "ᵀ-3", "<𝐓-3>", "﹤T-5﹥", "<T-³>",
    "<T-", "T-", "3>", "<", ">", "[", "]", "T", "-", "7", " ", "\n", ". ", "。", "Hello", "你好",
    "‹Т-3›", "<|endoftext|>", "<|endofprompt|>",
]  # fmt: skip
unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
tag_heavy_text = st.lists(st.sampled_from(LOOKALIKE_FRAGMENTS) | unicode_text, max_size=40).map("".join)
prose_text = st.lists(
    st.sampled_from(
        ["Hello world.", " It is 3.14!", " 你好。", "\n\n# Head\n", "\n- item", " x" * 50, "词" * 300]
    )
    | unicode_text,
    max_size=30,
).map("".join)
any_text = unicode_text | tag_heavy_text | prose_text


@pytest.fixture(scope="module")
def counter():
    return default_counter()


def expected_markup(n: int) -> list[str]:
    return [m for k in range(1, n + 1) for m in (f"<T-{k}>", f"</T-{k}>")]


def check_windows(text: str, windows: list[TaggedWindow], counter, window_tokens: int) -> None:
    segs = [s for w in windows for s in w.segments]
    # Windows cover all segments, in order, contiguous and lossless.
    assert "".join(text[s.start : s.end] for s in segs) == text
    first = 1
    for i, w in enumerate(windows):
        assert w.window_index == i and w.first_tag == first
        first += w.n_tags
        assert w.n_tags >= 1 and len(w.plain_texts) == w.n_tags
        for k in range(1, w.n_tags + 1):  # every tag maps back to the source
            start, end = w.span(k)
            assert text[start:end] == w.plain_texts[k - 1]
        # ZI-ISAG's format, tags restarting at 1, look-alikes neutralised in the content.
        assert w.tagged_text == "".join(
            f"<T-{k}>{neutralize_tags(p)}</T-{k}>" for k, p in enumerate(w.plain_texts, 1)
        )
        assert LOOKALIKE.findall(w.tagged_text) == expected_markup(w.n_tags)
        # Budget, by the counter's own measure; only a lone oversize segment may exceed it.
        if w.n_tags > 1:
            assert window_cost(w, counter) <= window_tokens


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=any_text, window_tokens=st.integers(40, 400), max_chars=st.integers(16, 600))
def test_tag_document_properties(counter, text: str, window_tokens: int, max_chars: int) -> None:
    windows = tag_document(
        Document("doc", text),
        document_index=3,
        counter=counter,
        window_tokens=window_tokens,
        max_segment_chars=max_chars,
    )
    assert all(w.document_index == 3 for w in windows)
    check_windows(text, windows, counter, window_tokens)
    for w in windows:  # tag_document cuts segments that alone exceed the budget
        assert window_cost(w, counter) <= window_tokens


@settings(max_examples=150, deadline=None)
@given(text=any_text)
def test_no_lookalike_survives_neutralize(text: str) -> None:
    out = neutralize_tags(text)
    assert not LOOKALIKE.search(out)
    assert not LOOKALIKE.search(unicodedata.normalize("NFKC", out))
    assert parse_tags(out, 10**6).tags == []


@settings(max_examples=150, deadline=None)
@given(text=any_text)
def test_restore_inverts_neutralize(text: str) -> None:
    # Exact for text without the replacement characters and whose look-alikes use ASCII/full-width forms.
    if any(c in text for c in "‹›⁅⁆❮❯⟦⟧⟨⟩«»〖〗ТтƬƭ") or unicodedata.normalize("NFKC", text) != text:
        return
    assert restore_tags(neutralize_tags(text)) == text


@pytest.mark.parametrize(
    ("text", "neutral"),
    [
        ("<T-3>", "‹Т-3›"),
        ("</T-3>", "‹/Т-3›"),
        ("<t-3>", "‹т-3›"),
        ("< T - 3 >", "‹ Т - 3 ›"),
        ("＜Ｔ－３＞", "❮Ƭ－３❯"),
        ("[T-3]", "⁅Т-3⁆"),
        ("【T-3】", "〖Т-3〗"),
        ("<T-1>~<T-3>", "‹Т-1›~‹Т-3›"),
        ("the T-1000 robot", "the Т-1000 robot"),
        ("AT-4 and T-shirt and <Table>", "AT-4 and T-shirt and <Table>"),  # no tag reading here
    ],
)
def test_neutralize_examples(text: str, neutral: str) -> None:
    assert neutralize_tags(text) == neutral
    assert restore_tags(neutral) == text


def test_compatibility_forms_are_neutralised_too() -> None:
    for text in ("<𝐓-3>", "ᵀ-3", "﹤T-5﹥", "<T-③>"):
        out = neutralize_tags(text)
        assert parse_tags(out, 100).tags == [], text
        assert parse_tags(text, 100).tags != [], text  # the parser would have read the original


def test_render_tagged_format() -> None:
    assert (
        render_tagged(["Hi.", " A <T-2> B.", "\n\nEnd"])
        == "<T-1>Hi.</T-1><T-2> A ‹Т-2› B.</T-2><T-3>\n\nEnd</T-3>"
    )
    assert render_tagged([]) == ""


def test_count_texts_is_exact(counter) -> None:
    texts = ["Hello world.", "", " 你好。", "a<|endoftext|>b", "<|endofprompt|>", "  \n\n  ", "x" * 3000]
    assert count_texts(counter, texts) == [counter.count(t) for t in texts]
    no_sep = [t for t in texts if "<|endoftext|>" not in t]
    assert count_texts(counter, no_sep) == [counter.count(t) for t in no_sep]
    assert count_texts(counter, []) == []


class CharCounter:
    """A real, if simple, TokenCounter: one token per character (exercises the generic path)."""

    name = "chars"

    def count(self, text: str) -> int:
        return len(text)

    def count_many(self, texts: list[str]) -> list[int]:
        return [len(t) for t in texts]


@settings(max_examples=50, deadline=None)
@given(text=any_text, window_tokens=st.integers(60, 500))
def test_generic_counter(text: str, window_tokens: int) -> None:
    counter = CharCounter()
    windows = build_windows(
        text,
        segment(text, max_segment_chars=50),
        document_index=0,
        counter=counter,
        window_tokens=window_tokens,
    )
    check_windows(text, windows, counter, window_tokens)


def test_windows_restart_numbering_and_report_first_tag(counter) -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    windows = tag_document(Document("d", text), document_index=0, counter=counter, window_tokens=100)
    assert len(windows) > 5
    assert [w.first_tag for w in windows] == [
        1 + sum(v.n_tags for v in windows[:i]) for i in range(len(windows))
    ]
    for w in windows:
        assert w.tagged_text.startswith("<T-1>") and w.tagged_text.endswith(f"</T-{w.n_tags}>")
        assert counter.count(w.tagged_text) <= 100


def test_oversize_segments_are_cut_to_the_budget(counter) -> None:
    text = "词" * 5000  # no break at all; ~1 token per character
    windows = tag_document(Document("d", text), document_index=0, counter=counter, window_tokens=200)
    check_windows(text, windows, counter, 200)
    assert all(window_cost(w, counter) <= 200 for w in windows)


def test_windows_from_texts_maps_one_tag_per_text(counter) -> None:
    sents = ["Paris is the capital of France.", " It hosts the <T-9> Louvre.", " 它很大。", " " * 3]
    windows = windows_from_texts(sents, document_index=1, counter=counter, window_tokens=1000)
    assert len(windows) == 1 and windows[0].plain_texts == tuple(sents)
    w = windows[0]
    doc = "".join(sents)
    assert [doc[slice(*w.span(k))] for k in range(1, 5)] == sents
    assert "‹Т-9›" in w.tagged_text and w.segments[3].kind == "blank"
    one_each = windows_from_texts(
        sents, document_index=1, counter=counter, window_tokens=tag_cost(counter, 1) + 2
    )
    assert [x.n_tags for x in one_each] == [1, 1, 1, 1]  # each text alone is over budget: own window
    with pytest.raises(InputError):
        windows_from_texts(["a", ""], document_index=0, counter=counter, window_tokens=100)


def test_bad_input(counter) -> None:
    assert tag_document(Document("d", ""), document_index=0, counter=counter, window_tokens=100) == []
    ws = tag_document(Document("d", " \n \n"), document_index=0, counter=counter, window_tokens=100)
    assert len(ws) == 1 and ws[0].plain_texts == (" \n \n",)
    garbage = (bytes(range(256)) * 200).decode("utf-8", errors="replace") + "\x00" * 100
    check_windows(
        garbage,
        tag_document(Document("d", garbage), document_index=0, counter=counter, window_tokens=300),
        counter,
        300,
    )
    with pytest.raises(ConfigError):
        tag_document(Document("d", "x"), document_index=0, counter=counter, window_tokens=3)


def test_five_megabyte_single_line(counter) -> None:
    text = "lorem ipsum dolor sit amet " * 200_000
    windows = tag_document(Document("d", text), document_index=0, counter=counter, window_tokens=2048)
    assert sum(w.n_tags for w in windows) >= 2500
    assert windows[-1].segments[-1].end == len(text)
    assert all(window_cost(w, counter) <= 2048 for w in windows[:3])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=any_text, window_tokens=st.integers(40, 400))
def test_supplied_costs_give_the_same_windows(counter, text: str, window_tokens: int) -> None:
    doc = Document("d", text)
    costs = prompt_costs(text, segment(text), counter)
    expected = tag_document(doc, document_index=0, counter=counter, window_tokens=window_tokens)
    assert (
        tag_document(doc, document_index=0, counter=counter, window_tokens=window_tokens, costs=costs)
        == expected
    )
    segs = segment(text)
    assert build_windows(
        text, segs, document_index=0, counter=counter, window_tokens=window_tokens, costs=costs
    ) == build_windows(text, segs, document_index=0, counter=counter, window_tokens=window_tokens)


def test_supplied_costs_are_checked(counter) -> None:
    text = "One. Two. Three."
    segs = segment(text)
    with pytest.raises(ConfigError):
        build_windows(text, segs, document_index=0, counter=counter, window_tokens=100, costs=[1, 2])
    with pytest.raises(ConfigError):
        tag_document(
            Document("d", text), document_index=0, counter=counter, window_tokens=100, costs=[1, -1, 1]
        )


def test_lookalike_made_by_a_hard_cut_is_neutralised(counter) -> None:
    # "xT-4" is no tag look-alike, but a hard cut before the "T" leaves a segment starting "T-4".
    text = "x" * 16 + "T-4" + "y" * 20
    windows = tag_document(
        Document("d", text), document_index=0, counter=counter, window_tokens=300, max_segment_chars=16
    )
    check_windows(text, windows, counter, 300)
    assert "<T-2>Т-4" in windows[0].tagged_text  # Cyrillic Т


def test_render_tagged_many_segments() -> None:
    texts = [f"s{i}. " for i in range(700)]
    assert render_tagged(texts) == "".join(f"<T-{k}>{t}</T-{k}>" for k, t in enumerate(texts, 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=prose_text | tag_heavy_text, max_chars=st.integers(16, 600))
def test_tag_document_segments_are_segment_views_of_segment(counter, text: str, max_chars: int) -> None:
    # A large budget: no segment is cut for tokens, so the windows hold exactly segment()'s segments.
    windows = tag_document(
        Document("d", text),
        document_index=0,
        counter=counter,
        window_tokens=100_000,
        max_segment_chars=max_chars,
    )
    assert [s for w in windows for s in w.segments] == segment(text, max_segment_chars=max_chars)
    for w in windows:
        assert isinstance(w.segments, SegmentView) and len(w.segments) == w.n_tags
        # Same value as a window holding a tuple of the same segments: equal, same hash.
        as_tuple = dataclasses.replace(w, segments=tuple(w.segments))
        assert as_tuple == w and hash(as_tuple) == hash(w)
        with pytest.raises(dataclasses.FrozenInstanceError):
            w.segments = ()  # type: ignore[misc]


def test_windows_carry_the_document_title_and_given_kinds(counter) -> None:
    doc = Document("page", "# Heading\n\nOne sentence. Two sentences.", title="The page title")
    windows = tag_document(doc, document_index=3, counter=counter, window_tokens=16)
    assert len(windows) > 1 and {w.title for w in windows} == {"The page title"}
    assert windows[0].segments[0].kind == "heading"
    given = windows_from_texts(
        ["Title\n", "A sentence."], document_index=0, counter=counter, window_tokens=64,
        kinds=["heading", "sentence"], title="T",
    )
    assert [s.kind for s in given[0].segments] == ["heading", "sentence"] and given[0].title == "T"
    with pytest.raises(InputError):
        windows_from_texts(["a", "b"], document_index=0, counter=counter, window_tokens=64, kinds=["sentence"])
