"""The speed baseline (``evals.baseline_splitter``) follows ZI-ISAG's splitter rules, losses included;
``evals.baseline_fidelity`` loads upstream's two definitions from a file and compares."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.baseline_fidelity import fidelity, load_upstream
from evals.baseline_splitter import baseline_split, baseline_split_and_tag
from zi_isag_tool.errors import InputError


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


# A stand-in for upstream's util.py (upstream's code is not part of this project): the two
# definitions the fidelity check needs, among imports it must skip and code it must not run.
_FAKE_UPSTREAM = """
import re
import openai  # not installed here: skipped, as a non-standard-library import
from tqdm import tqdm

raise SystemExit("module-level code other than the two definitions must not run")


def get_tag_content(segments):
    return "".join(f"<T-{i}>{s}</T-{i}>" for i, s in enumerate(segments, 1))


class TextSplitterFSM:
    def __init__(self):
        self.segments = []

    def process(self, text):
        self.segments = [s for s in re.split(r"(?<=[.!?])(?= )", text) if s]

    def get_segments(self):
        return self.segments
"""


def test_fidelity_loads_only_the_two_definitions_and_compares(tmp_path: Path) -> None:
    path = tmp_path / "util.py"
    path.write_text(_FAKE_UPSTREAM, encoding="utf-8")
    upstream = load_upstream(path)
    assert set(upstream) == {"TextSplitterFSM", "get_tag_content"}
    texts = ["One. Two!", "Pi is 3.14 today. Yes.", "a  b"]  # the stand-in keeps both spaces of "a  b"
    report = fidelity(texts, upstream, repeats=2)
    assert report["documents"] == 3 and report["identical_output"] == 2 and report["rounds"] == 2
    assert report["upstream_over_reimplementation"] > 0


def test_fidelity_refuses_a_file_without_the_definitions(tmp_path: Path) -> None:
    path = tmp_path / "other.py"
    path.write_text("import os\n\ndef get_tag_content(segments):\n    return ''\n", encoding="utf-8")
    with pytest.raises(InputError, match="TextSplitterFSM"):
        load_upstream(path)
