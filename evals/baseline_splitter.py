"""ZI-ISAG's sentence splitter and tagger, re-implemented as a speed and quality baseline.

Not used by the pipeline. It reproduces the upstream algorithm (heguangxin/ZI-ISAG,
``data/utils/util.py``: ``TextSplitterFSM`` + ``get_tag_content``) so ``evals/bench_tagging.py`` can
compare throughput and boundary quality against ``zi_isag_tool.segment``:

* a character-by-character state machine in pure Python with two states: START (leading whitespace,
  kept in the segment as upstream does, which yields ``<T-2> It's...``) and READING (accumulates);
* URL spans are precomputed with a regex, and every ``.`` scans the span list linearly;
* a ``.`` ends a segment unless it lies in a URL, touches a digit on either side, or belongs to
  ``..``/``...``; a ``"`` right after it is absorbed;
* ``! ? 。 ！ ？`` end a segment, absorbing one following closing quote (``’ ” "``);
* two consecutive spaces end a segment, and the first of the two spaces is dropped: the splitter
  is lossy, so joining its segments does not always give the input back;
* tags are added by string concatenation, ``<T-i>`` + segment + ``</T-i>``.
"""

from __future__ import annotations

import re

__all__ = ["BaselineSplitter", "baseline_split", "baseline_tag", "baseline_split_and_tag"]

_URL_RE = re.compile(r"https?://[^\s/$.?#].[^\s]*")
_OTHER_ENDS = "!?。！？"
_CLOSING_QUOTES = "’”\""


class BaselineSplitter:
    """Two-state splitter; one instance per text (it keeps its state like upstream's FSM)."""

    def __init__(self) -> None:
        self.state = "START"
        self.current = ""
        self.segments: list[str] = []
        self.urls: list[tuple[int, int]] = []

    def _in_url(self, index: int) -> bool:
        for start, end in self.urls:  # linear scan per '.', as upstream
            if start <= index < end:
                return True
        return False

    def _flush(self) -> None:
        self.segments.append(self.current)
        self.current = ""
        self.state = "START"

    def process(self, text: str) -> list[str]:
        self.urls = [(m.start(), m.end()) for m in _URL_RE.finditer(text)]
        n = len(text)
        i = 0
        while i < n:
            ch = text[i]
            if self.state == "START":
                self.current += ch
                if not ch.isspace():
                    self.state = "READING"
            elif ch == ".":
                self.current += ch
                keeps_going = (
                    self._in_url(i)
                    or (i + 1 < n and text[i + 1].isdigit())
                    or (i > 0 and text[i - 1].isdigit())
                    or (i + 1 < n and text[i + 1] == ".")
                )
                if not keeps_going:
                    if i + 1 < n and text[i + 1] == '"':
                        self.current += text[i + 1]
                        i += 1
                    self._flush()
            elif ch in _OTHER_ENDS:
                self.current += ch
                if i + 1 < n and text[i + 1] in _CLOSING_QUOTES:
                    self.current += text[i + 1]
                    i += 1
                self._flush()
            elif ch == " " and i + 1 < n and text[i + 1] == " ":
                self._flush()  # this space is dropped (upstream behaviour)
            else:
                self.current += ch
            i += 1
        if self.current:
            self.segments.append(self.current)
        return self.segments


def baseline_split(text: str) -> list[str]:
    return BaselineSplitter().process(text)


def baseline_tag(segments: list[str]) -> str:
    tagged = ""
    for i, seg in enumerate(segments, 1):
        tagged += f"<T-{i}>"
        tagged += seg
        tagged += f"</T-{i}>"
    return tagged


def baseline_split_and_tag(text: str) -> tuple[list[str], str]:
    segments = baseline_split(text)
    return segments, baseline_tag(segments)
