"""The speed baseline (``evals.baseline_splitter``) follows ZI-ISAG's splitter rules, losses included."""

from __future__ import annotations

import pytest

from evals.baseline_splitter import baseline_split, baseline_split_and_tag


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        # A '.' ends a segment; the whitespace after it starts the next one.
        ("One. Two.", ["One.", " Two."]),
        # ... unless it touches a digit on either side,
        ("Pi is 3.14 today. Yes.", ["Pi is 3.14 today.", " Yes."]),
        ("Version 2. Then.", ["Version 2. Then."]),
        # ... or is followed by another '.' (so only the last dot of an ellipsis can end one),
        ("Wait... what. Ok.", ["Wait...", " what.", " Ok."]),
        ("A..b. C", ["A..", "b.", " C"]),
        # ... or lies in a URL.
        ("See https://a.example.org/x.html now. Done.", ["See https://a.example.org/x.html now.", " Done."]),
        # A '"' right after the '.' stays with its sentence.
        ('He said "hi." She left.', ['He said "hi."', " She left."]),
        # '!', '?' and CJK ends, with one following closing quote absorbed.
        ("Stop!” Who? Me.", ["Stop!”", " Who?", " Me."]),
        ("今天很好。我们走吧！", ["今天很好。", "我们走吧！"]),
        # Abbreviations are not known: "Mr." ends a segment.
        ("Mr. Smith came.", ["Mr.", " Smith came."]),
        # Two spaces end a segment and the first of them is lost.
        ("a  b", ["a", " b"]),
        # Text after the last end is the last segment.
        ("No end here", ["No end here"]),
        ("", []),
    ],
)
def test_baseline_follows_upstream_rules(text: str, segments: list[str]) -> None:
    assert baseline_split(text) == segments


def test_baseline_tags_by_concatenation() -> None:
    segments, tagged = baseline_split_and_tag("One. Two!")
    assert segments == ["One.", " Two!"]
    assert tagged == "<T-1>One.</T-1><T-2> Two!</T-2>"
