"""The tolerant tag parser: every answer form, adversarial inputs, and hypothesis fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zi_isag_tool.datasets import UPSTREAM_EXAMPLES_DIR
from zi_isag_tool.parser import ParsedTags, format_tags, parse_tags

UPSTREAM = UPSTREAM_EXAMPLES_DIR


def _check_invariants(r: ParsedTags, n_tags: int) -> None:
    assert r.tags == sorted(set(r.tags))
    assert all(1 <= t <= n_tags for t in r.tags)
    assert not (r.none and r.failed)
    if r.failed:
        assert r.tags == [] and r.error
    if r.tags:
        assert not r.none and not r.failed
    assert r.dropped_out_of_range >= 0 and r.truncated_ranges >= 0
    members = [t for g in r.groups for t in g]
    assert set(members) <= set(r.tags)
    assert all(g for g in r.groups)


@pytest.mark.parametrize(
    ("answer", "n", "expected"),
    [
        ("#Extracted Information Tag#: [[<T-14>], [<T-15>], [<T-16>]]", 16, [14, 15, 16]),
        ("#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-5>]]", 16, [1, 3, 4, 5]),
        ("[<T-5>~<T-3>]", 16, [3, 4, 5]),  # reversed range
        ("[[T-2, T-4~T-6], [T-9]]", 16, [2, 4, 5, 6, 9]),  # bare ids in lists, [T-9]
        ("[T-3], [T-7]", 16, [3, 7]),
        ("[[</T-2>], [<T-7]]", 16, [2, 7]),  # closing-tag slip, missing '>'
        ("＃Extracted Information Tag＃：［［＜Ｔ－３＞～＜Ｔ－５＞］］", 16, [3, 4, 5]),  # full width
        ("[<T-3>〜<T-4>, <T-8>–<T-9>]", 16, [3, 4, 8, 9]),  # wave dash, en dash
        ("【T-2】", 16, [2]),
        ("[<T-1>~<T-3>~<T-6>]", 16, [1, 2, 3, 4, 5, 6]),  # chained range
        ("[<T-3>, <T-3>, <T-03>]", 16, [3]),  # duplicates, leading zero
        ("Sure! Here you go:\n```\n#Extracted Information Tag#: [[<T-2>]]\n```\nHope it helps.", 16, [2]),
        ("#Extracted Information Tag#: T-4, T-6", 16, [4, 6]),  # no list at all
        ("[<T-3>, <t-4>]", 16, [3, 4]),
        # A hyphen between two tags is not a range (T-3 holds a hyphen itself).
        ("[<T-3>-<T-5>]", 16, [3, 5]),
        # With angle tags present, a bare model name in the info text is prose.
        (
            "#Extracted Information#:\n1. The T-34 tank and GPT-4 [<T-2>]\n2. More [<T-5>, <T-7>~<T-8>]",
            40,
            [2, 5, 7, 8],
        ),
    ],
)
def test_answer_forms(answer: str, n: int, expected: list[int]) -> None:
    r = parse_tags(answer, n)
    assert r.tags == expected
    assert not r.none and not r.failed and r.error is None
    _check_invariants(r, n)


def test_groups_follow_the_model() -> None:
    r = parse_tags("#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-5>, <T-9>], <T-12>]", 16)
    assert r.groups == [[1], [3, 4, 5, 9], [12]]
    info = "['#Extracted Information#:\\n1. a[<T-14>]\\n2. b[<T-15>, <T-16>]']"
    assert parse_tags(info, 16).groups == [[14], [15, 16]]


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "",
        "   \n",
        "None",
        "none",
        "#Extracted Information Tag#: None",
        "#Extracted Information Tag#:None",
        "['#Extracted Information#: None']",
        "[]",
        "#Extracted Information Tag#: [[]]",
        "```\n#Extracted Information Tag#: None\n```",
        "无",
        "null",
    ],
)
def test_explicit_none(answer: str | None) -> None:
    r = parse_tags(answer, 16)
    assert r.none and not r.failed and r.tags == [] and r.error is None


@pytest.mark.parametrize(
    "answer",
    ["garbage", "I think the answer is Paris.", "[[[[", "]]]", "#Extracted Information Tag#: [[<T-i>, ...]]"],
)
def test_unparseable_is_failed_not_exception(answer: str) -> None:
    r = parse_tags(answer, 16)
    assert r.failed and not r.none and r.tags == []
    assert r.error and len(r.error) < 200


def test_out_of_range_dropped_and_counted() -> None:
    r = parse_tags("[<T-0>, <T-2>, <T-17>, <T-17>, <T-99999999999999999999>]", 16)
    assert r.tags == [2]
    assert r.dropped_out_of_range == 3  # 0, 17 (once), the huge id
    r = parse_tags("[<T-14>~<T-20>]", 16)
    assert r.tags == [14, 15, 16] and r.dropped_out_of_range == 4
    r = parse_tags("[<T-3>]", 0)
    assert r.tags == [] and r.dropped_out_of_range == 1 and not r.failed


def test_range_expansion_capped() -> None:
    r = parse_tags("[<T-1>~<T-100000>]", 1000, max_range=256)
    assert r.tags == list(range(1, 257))
    assert r.truncated_ranges == 1
    r = parse_tags("[<T-9>~<T-1>]", 1000, max_range=4)
    assert r.tags == [1, 2, 3, 4] and r.truncated_ranges == 1


def test_upstream_answers_parse() -> None:
    for line in (UPSTREAM / "extract_data_extract_info_tag.jsonl").read_text().splitlines():
        rec = json.loads(line)
        n = rec["tagged_content"].count("</T-")
        tag_only = parse_tags(rec["extractTag"], n)
        info = parse_tags(rec["extractInfoTag"], n)  # a list of one string, as upstream stores it
        assert tag_only.tags == info.tags
        assert tag_only.none == info.none
        assert not tag_only.failed and not info.failed
    for name in ("train", "eval"):
        for line in (
            (UPSTREAM / f"instruction_set_zi-isag_example_data_{name}.jsonl").read_text().splitlines()
        ):
            rec = json.loads(line)
            r = parse_tags(rec["chosen"], 16)
            assert not r.failed
            assert r.tags in ([], [14, 15, 16])


def test_format_tags() -> None:
    assert format_tags([5, 1, 3, 4, 3]) == "#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-5>]]"
    assert format_tags([]) == "#Extracted Information Tag#: None"
    assert format_tags([2], prefix="") == "[[<T-2>]]"
    assert (
        format_tags(range(1, 6), max_run=2)
        == "#Extracted Information Tag#: [[<T-1>~<T-2>], [<T-3>~<T-4>], [<T-5>]]"
    )
    with pytest.raises(ValueError):
        format_tags([0, 1])


@pytest.mark.parametrize(
    "adversarial",
    [
        "<T-" * 350_000,
        "[" * 1_000_000,
        "]" * 1_000_000,
        "[ " * 500_000,
        "T-" * 500_000,
        "<T-1>~" * 170_000,
        "<T-1>~<T-999>," * 70_000,
        "<T-" + "9" * 1_000_000 + ">",
        " " * 1_000_000 + "<",
        "</T-</T-[T-[[T-~~~~" * 50_000,
    ],
)
def test_adversarial_inputs_complete(adversarial: str) -> None:
    r = parse_tags(adversarial, 1000)
    _check_invariants(r, 1000)


_TAG_ALPHABET = st.sampled_from(list("<>[]/Tt-~～–〜0123456789 ,\n#【】＜＞Ｔ－１none"))
_texts = st.one_of(
    st.text(),
    st.text(alphabet=_TAG_ALPHABET),
    st.lists(
        st.sampled_from(
            [
                "<T-",
                "T-",
                "</T-",
                ">",
                "[",
                "]",
                "~",
                "-",
                "3",
                "12",
                "0",
                "None",
                "#Extracted Information Tag#:",
                " ",
                ",",
            ]
        )
    ).map("".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_texts, n_tags=st.integers(min_value=0, max_value=1000), max_range=st.integers(1, 300))
def test_fuzz_never_raises(text: str, n_tags: int, max_range: int) -> None:
    r = parse_tags(text, n_tags, max_range=max_range)
    _check_invariants(r, n_tags)


@settings(max_examples=300, deadline=None)
@given(
    n_tags=st.integers(min_value=1, max_value=1000),
    data=st.data(),
)
def test_round_trip(n_tags: int, data: st.DataObject) -> None:
    tags = data.draw(st.lists(st.integers(min_value=1, max_value=n_tags), max_size=60))
    r = parse_tags(format_tags(tags), n_tags)
    assert r.tags == sorted(set(tags))
    assert r.none == (not tags)
    assert not r.failed and r.dropped_out_of_range == 0 and r.truncated_ranges == 0


def test_round_trip_long_runs() -> None:
    tags = list(range(1, 1001))
    assert parse_tags(format_tags(tags), 1000).tags == tags


@settings(max_examples=200, deadline=None)
@given(
    tags=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
    prose=st.text(alphabet=st.characters(blacklist_characters="<>[]【】〈〉《》Tt＜＞［］Ｔｔ"), max_size=40),
)
def test_prose_around_canonical_answer(tags: list[int], prose: str) -> None:
    r = parse_tags(f"{prose}\n```\n{format_tags(tags)}\n```\n{prose}", 50)
    assert r.tags == sorted(set(tags))


_group = st.tuples(
    st.integers(0, 3000).map(str) | st.sampled_from(["1", "007", "0", "9999999999"]),
    st.none() | st.integers(0, 3000).map(str),
)


@given(
    groups=st.lists(_group, max_size=12),
    prefix=st.sampled_from(["", "#Extracted Information Tag#: ", "#Extracted Information Tag#:", "\n "]),
    sep=st.sampled_from([", ", ",", ",\n"]),
    n_tags=st.integers(0, 3000),
    max_range=st.integers(1, 400),
)
@settings(max_examples=400, deadline=None)
def test_canonical_fast_path_reads_like_the_general_parser(groups, prefix, sep, n_tags, max_range) -> None:
    from zi_isag_tool.parser import _CANONICAL_RE, _parse_general

    body = sep.join(f"[<T-{a}>]" if b is None else f"[<T-{a}>~<T-{b}>]" for a, b in groups)
    answer = f"{prefix}[{body}] "
    got = parse_tags(answer, n_tags, max_range=max_range)
    assert got == _parse_general(answer, n_tags, max_range)
    if all(a[0] != "0" and len(a) < 10 and (b is None or b[0] != "0") for a, b in groups):
        assert _CANONICAL_RE.fullmatch(answer)  # these answers did take the fast path
