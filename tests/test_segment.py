"""Lossless segmentation: property tests over arbitrary text, then one example per splitting rule."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zi_isag_tool.errors import ConfigError
from zi_isag_tool.segment import SegmentView, make_segments, segment, segment_bounds
from zi_isag_tool.types import Segment

KINDS = {"sentence", "heading", "list_item", "table_row", "code", "blank", "other"}

# Pieces that exercise every rule and every edge: terminators, look-alike tags, markdown, CJK,
# whitespace of all sorts, long runs without spaces.
FRAGMENTS = [
    ". ", "! ", "? ", "。", "！", "？", "...", "…", "3.14", "e.g. ", "Dr. ", "J. ", "U.S. ",
    "https://a.b/c.d", "x@example.com", '"', "”", "」", ")", " ", "  ", "\t", "\n", "\n\n", "\r\n",
    "# Heading\n", "\n## H2", "\n- item", "\n1. first", "\n| a | b |", "\n```py\ncode. here\n\n```\n",
    "\n~~~\n", "\n---\n", "Hello", "world", "The", "你好", "Привет", "<T-3>", "</T-12>", "<t-3>",
    "< T - 3 >", "＜Ｔ－３＞", "[T-3]", "【T-3】", "T-7", "\x00", "\ufffd", "x" * 300, " " * 200,
]  # fmt: skip

unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=400)
fragment_text = st.lists(st.sampled_from(FRAGMENTS) | unicode_text, max_size=40).map("".join)
any_text = unicode_text | fragment_text


def check_lossless(text: str, max_chars: int) -> None:
    segs = segment(text, max_segment_chars=max_chars)
    if not text:
        assert segs == []
        return
    assert "".join(text[s.start : s.end] for s in segs) == text
    assert segs[0].start == 0 and segs[-1].end == len(text)
    for prev, cur in zip(segs, segs[1:], strict=False):
        assert prev.end == cur.start  # contiguous: every character in exactly one segment
    for s in segs:
        assert s.end > s.start  # never empty
        assert s.end - s.start <= max_chars
        assert s.kind in KINDS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=any_text, max_chars=st.integers(16, 400))
def test_segments_are_lossless_contiguous_and_bounded(text: str, max_chars: int) -> None:
    check_lossless(text, max_chars)


@settings(max_examples=100, deadline=None)
@given(text=any_text)
def test_default_bound(text: str) -> None:
    check_lossless(text, 2000)


@settings(max_examples=100, deadline=None)
@given(text=fragment_text)
def test_whitespace_goes_to_the_following_segment(text: str) -> None:
    segs = segment(text)
    for s in segs[:-1]:  # a cut sits right after content, unless a whitespace run was cut hard
        piece = text[s.start : s.end]
        if not piece.isspace() and len(piece) < 2000:
            assert not text[s.end - 1].isspace()


def texts(text: str, **kw: int) -> list[str]:
    return [text[s.start : s.end] for s in segment(text, **kw)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pi is 3.14 today. Yes.", ["Pi is 3.14 today.", " Yes."]),
        ("It costs $3. Then it rose.", ["It costs $3.", " Then it rose."]),
        ("See https://a.b/c.d for more. Ok.", ["See https://a.b/c.d for more.", " Ok."]),
        ("Go to example.com. Then wait.", ["Go to example.com.", " Then wait."]),
        ("Mail jane.doe@example.org now. Ok.", ["Mail jane.doe@example.org now.", " Ok."]),
        ("Wait... What? No.", ["Wait... What?", " No."]),
        ("He paused… Then spoke.", ["He paused… Then spoke."]),
        (
            "Mr. and Mrs. Smith met Dr. Jones. Then left.",
            ["Mr. and Mrs. Smith met Dr. Jones.", " Then left."],
        ),
        ("Prof. X vs. St. Y at 5 p.m. Sharp. Ok.", ["Prof. X vs. St. Y at 5 p.m. Sharp.", " Ok."]),
        ("Fruit, e.g. apples. Also i.e. Pears. End.", ["Fruit, e.g. apples.", " Also i.e. Pears.", " End."]),
        ("Acme Inc. Is big. Acme Ltd. Too.", ["Acme Inc. Is big.", " Acme Ltd. Too."]),
        ("The U.S. Army won. Ok.", ["The U.S. Army won.", " Ok."]),
        ("J. K. Rowling wrote it. Yes.", ["J. K. Rowling wrote it.", " Yes."]),
        ("A COP of 3.5 at 8 °C. At -15 °F. It drops.", ["A COP of 3.5 at 8 °C.", " At -15 °F.", " It drops."]),
        ("See No. 5 and Fig. 3 here. Ok.", ["See No. 5 and Fig. 3 here.", " Ok."]),
        ("The answer is no. We left.", ["The answer is no.", " We left."]),
        ("a sentence. then lowercase.", ["a sentence. then lowercase."]),
        ('He said "hi." She left.', ['He said "hi."', " She left."]),
        ('He said "hi." and left.', ['He said "hi." and left.']),
        ('"Is it?" she asked. Yes!', ['"Is it?" she asked.', " Yes!"]),
        ("Stop! Who's there?! Me.", ["Stop!", " Who's there?!", " Me."]),
        ("你好。我很好！真的吗？", ["你好。", "我很好！", "真的吗？"]),
        ("「你好。」他说。", ["「你好。」", "他说。"]),
        ("Привет. Мир. мир.", ["Привет.", " Мир. мир."]),
        ("interface.A lot of people. Ok.", ["interface.", "A lot of people.", " Ok."]),
        ("Open github.com/foo.Bar now. Ok.", ["Open github.com/foo.Bar now.", " Ok."]),
        ("Use sort.py here. Ok.", ["Use sort.py here.", " Ok."]),
    ],
)
def test_sentence_rules(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


def test_markdown_blocks() -> None:
    text = (
        "# Title\n\nIntro one. Intro two.\n\n- item one. Still item.\n- item two\n1. numbered\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = 1. y = 2\n\nz = 3\n```\n\n---\n\nAfter.  \n"
    )
    segs = segment(text)
    got = [(text[s.start : s.end], s.kind) for s in segs]
    assert got == [
        ("# Title", "heading"),
        ("\n\nIntro one.", "sentence"),
        (" Intro two.", "sentence"),
        ("\n\n- item one. Still item.", "list_item"),
        ("\n- item two", "list_item"),
        ("\n1. numbered", "list_item"),
        ("\n\n| a | b |", "table_row"),
        ("\n|---|---|", "table_row"),
        ("\n| 1 | 2 |", "table_row"),
        ("\n\n```python\nx = 1. y = 2\n\nz = 3\n```", "code"),
        ("\n\n---", "other"),
        ("\n\nAfter.  \n", "sentence"),
    ]


def test_unclosed_fence_runs_to_the_end_and_is_bounded() -> None:
    text = "Before.\n```\n" + "line. Another line.\n" * 30
    segs = segment(text, max_segment_chars=100)
    assert [s.kind for s in segs[1:]] == ["code"] * (len(segs) - 1)
    assert all(s.end - s.start <= 100 for s in segs)


def test_paragraph_breaks_split_without_punctuation() -> None:
    assert texts("First paragraph\n\nSecond paragraph\nsame one") == [
        "First paragraph",
        "\n\nSecond paragraph\nsame one",
    ]


def test_leading_and_trailing_whitespace() -> None:
    assert texts("  \n Hello. World.  \n") == ["  \n Hello.", " World.  \n"]


def test_empty_and_whitespace_only() -> None:
    assert segment("") == []
    segs = segment(" \n\t\n ")
    assert len(segs) == 1 and segs[0].kind == "blank" and (segs[0].start, segs[0].end) == (0, 5)


def test_long_whitespace_only_document_is_bounded() -> None:
    segs = segment(" " * 10_000, max_segment_chars=1000)
    assert len(segs) == 10 and all(s.kind == "blank" for s in segs)


def test_five_megabyte_single_line() -> None:
    words = "lorem ipsum dolor sit amet " * 200_000  # ~5.4 MB, no punctuation at all
    segs = segment(words)
    assert "".join(words[s.start : s.end] for s in segs) == words
    assert max(s.end - s.start for s in segs) <= 2000
    assert all(not words[s.end - 1].isspace() for s in segs[:-1])  # cut at whitespace
    solid = "x" * 5_000_000  # no whitespace either: hard cuts
    segs = segment(solid)
    assert len(segs) == 2500 and all(s.end - s.start == 2000 for s in segs)


def test_binary_garbage_and_nul() -> None:
    garbage = (bytes(range(256)) * 400).decode("utf-8", errors="replace")
    check_lossless(garbage, 2000)
    nul = "a\x00b. \x00\x00 C.\x00"
    check_lossless(nul, 2000)
    assert texts(nul) == ["a\x00b.", " \x00\x00 C.\x00"]


def test_max_segment_chars_validated() -> None:
    with pytest.raises(ConfigError):
        segment("abc", max_segment_chars=3)


@settings(max_examples=100, deadline=None)
@given(text=any_text, max_chars=st.integers(16, 400))
def test_segment_bounds_and_make_segments_agree_with_segment(text: str, max_chars: int) -> None:
    starts, ends, kinds = segment_bounds(text, max_segment_chars=max_chars)
    expected = [
        Segment(a, b, k) for a, b, k in zip(starts, ends, kinds or ["sentence"] * len(starts), strict=True)
    ]
    assert segment(text, max_segment_chars=max_chars) == expected
    assert make_segments(starts, ends, kinds) == expected


def test_make_segments_builds_ordinary_frozen_segments() -> None:
    segs = make_segments([0, 5], [5, 9], None)
    assert segs == [Segment(0, 5), Segment(5, 9)] and all(type(s) is Segment for s in segs)
    assert hash(segs[0]) == hash(Segment(0, 5, "sentence")) and segs[1].kind == "sentence"
    with pytest.raises(dataclasses.FrozenInstanceError):
        segs[0].start = 1  # type: ignore[misc]
    assert make_segments([0], [3], ["heading"]) == [Segment(0, 3, "heading")]


def test_segment_view_builds_segments_on_read() -> None:
    starts, ends, kinds = [0, 4, 9, 12], [4, 9, 12, 20], ["heading", "sentence", "blank", "code"]
    everything = SegmentView(starts, ends, kinds)  # type: ignore[arg-type]
    expected = make_segments(starts, ends, kinds)  # type: ignore[arg-type]
    assert len(everything) == 4 and list(everything) == expected
    assert everything[0] == Segment(0, 4, "heading") and everything[-1] == Segment(12, 20, "code")
    middle = everything[1:3]
    assert isinstance(middle, SegmentView) and list(middle) == expected[1:3]
    assert middle[-1] == Segment(9, 12, "blank") and middle[0:1] == (Segment(4, 9),)
    assert list(everything[::2]) == expected[::2] and list(middle[5:]) == [] and len(everything[3:1]) == 0
    for bad in (2, -3):
        with pytest.raises(IndexError):
            middle[bad]
    assert middle == tuple(expected[1:3]) == middle and middle != everything and middle != list(middle)
    assert hash(middle) == hash(tuple(expected[1:3]))
    assert Segment(9, 12, "blank") in middle and Segment(0, 4, "heading") not in middle
    plain = SegmentView([0, 3], [3, 5])  # kinds None: all sentences
    assert list(plain) == [Segment(0, 3), Segment(3, 5)] and plain[1].kind == "sentence"
    assert (
        repr(plain)
        == "SegmentView([Segment(start=0, end=3, kind='sentence'), Segment(start=3, end=5, kind='sentence')])"
    )
