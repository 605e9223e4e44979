"""The segments of one extraction call, flat and in context: what the scorer backends rank.

Selection ranks across every document of a call, so scorers see one flat list: every segment of
every window, in the order the windows were given. Each segment also carries what it sits under —
its document's title and the nearest markdown heading before it — because a sentence such as "It
opened in 1932." only answers a question together with its heading. Headings, blank lines and
rules are context, never candidates: a bare heading is not a passage.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..types import TaggedWindow

__all__ = ["CallSegments", "heading_text", "has_words", "CONTEXT_KINDS"]

CONTEXT_KINDS = frozenset({"heading"})
"""Segment kinds that label what follows them (context, never candidates)."""
_NEVER_CANDIDATES = frozenset({"heading", "blank", "other"})
_HAS_WORD = re.compile(r"\w")
_HEADING_MARKS = re.compile(r"^\s{0,3}#{1,6}\s*|\s+#+\s*$")


def has_words(text: str) -> bool:
    """Whether a segment carries words at all (blank lines and rules are never scored nor selected)."""
    return _HAS_WORD.search(text) is not None


def heading_text(text: str) -> str:
    """A heading's words: markdown ``#`` marks and surrounding whitespace removed."""
    return " ".join(_HEADING_MARKS.sub("", text.strip()).split())


@dataclass(frozen=True, slots=True)
class CallSegments:
    """Every segment of a call's windows, flat: index ``i`` is ``windows[window[i]]``'s tag ``tag[i]``.

    Arrays are aligned with ``texts``; ``candidate`` marks the segments a scorer may select.
    """

    texts: list[str]
    window: np.ndarray
    """Position in the call's ``windows`` of each segment's window."""
    tag: np.ndarray
    """Window-local tag number (1-based)."""
    document: np.ndarray
    """``document_index`` of each segment."""
    candidate: np.ndarray
    """True for segments with words that are not headings, blank lines or rules."""
    title: list[str]
    """The document title of each segment ("" when the document has none)."""
    heading: list[str]
    """The nearest heading before each segment in its document ("" when none)."""
    section: np.ndarray
    """Section number, unique in the call: a new section starts at each document and each heading."""
    section_position: np.ndarray
    """0 for the first candidate of its section, then 1, 2, ..."""
    previous: np.ndarray
    """Flat index of the segment before it in reading order within its document, -1 for the first."""

    @classmethod
    def of(cls, windows: Sequence[TaggedWindow]) -> CallSegments:
        texts = [t for w in windows for t in w.plain_texts]
        n = len(texts)
        window = np.repeat(np.arange(len(windows), dtype=np.int64), [w.n_tags for w in windows])
        tag = np.concatenate([np.arange(1, w.n_tags + 1, dtype=np.int64) for w in windows]) if n else np.zeros(0, np.int64)
        document = np.repeat(np.array([w.document_index for w in windows], dtype=np.int64), [w.n_tags for w in windows])
        kinds = [s.kind for w in windows for s in w.segments]
        candidate = np.array(
            [k not in _NEVER_CANDIDATES and has_words(t) for k, t in zip(kinds, texts, strict=True)],
            dtype=bool,
        )
        title = [w.title for w in windows for _ in range(w.n_tags)]
        heading = [""] * n
        section = np.zeros(n, dtype=np.int64)
        section_position = np.zeros(n, dtype=np.int64)
        previous = np.full(n, -1, dtype=np.int64)
        # Context runs in reading order within each document, across window cuts.
        offsets = np.concatenate([[0], np.cumsum([w.n_tags for w in windows])]).astype(np.int64)
        by_doc: dict[int, list[int]] = defaultdict(list)
        for pos, w in enumerate(windows):
            by_doc[w.document_index].append(pos)
        sections = 0
        for positions in by_doc.values():
            positions.sort(key=lambda p: (windows[p].window_index, p))
            current, count, before = "", 0, -1
            sections += 1
            for pos in positions:
                for i in range(int(offsets[pos]), int(offsets[pos + 1])):
                    previous[i] = before
                    before = i
                    if kinds[i] in CONTEXT_KINDS:
                        current, count = heading_text(texts[i]), 0
                        sections += 1
                    else:
                        heading[i] = current
                    section[i] = sections
                    if candidate[i]:
                        section_position[i] = count
                        count += 1
        return cls(texts, window, tag, document, candidate, title, heading, section, section_position, previous)

    def __len__(self) -> int:
        return len(self.texts)

    def section_name(self, i: int) -> str:
        """The name of segment ``i``'s section: its heading, else its document's title."""
        return self.heading[i] or self.title[i]

    def context(self, i: int) -> str:
        """What segment ``i`` sits under: ``"title › heading"``, either part alone, or ""."""
        title, heading = self.title[i], self.heading[i]
        if heading and title and heading.casefold() != title.casefold():
            return f"{title} › {heading}"
        return heading or title

    def in_context(self, i: int) -> str:
        """Segment ``i``'s text prefixed by its context (``"context: text"``), for scoring."""
        context = self.context(i)
        text = self.texts[i].strip()
        return f"{context}: {text}" if context else text

    def per_window(self, chosen: dict[int, float], n_windows: int) -> list[dict[int, float]]:
        """``{flat index: score}`` as ``{window-local tag: score}`` per window."""
        out: list[dict[int, float]] = [{} for _ in range(n_windows)]
        for i, score in chosen.items():
            out[int(self.window[i])][int(self.tag[i])] = score
        return out
