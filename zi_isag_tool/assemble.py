"""Assemble: selected window-local tags -> passages of exact original text with provenance.

Adjacent tags of one document merge into one passage, also across window boundaries (tag numbers
are document-level here). Passages are trimmed of surrounding whitespace by moving their offsets,
so ``passage.text == document.text[start:end]`` always holds. A passage whose words were already
returned (the same paragraph on two pages, a pull quote) is not returned twice.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .tokens import TokenCounter
from .types import Document, Passage, Segment, TaggedWindow, WindowSelection

_WORD = re.compile(r"\w+")


@dataclass(slots=True)
class _Run:
    document_index: int
    tags: list[int]
    segments: list[Segment]
    score: float | None
    order: int  # position of the first tag in reading order (document rank, then offset)


def _selected_runs(windows: Sequence[TaggedWindow], selections: Sequence[WindowSelection]) -> list[_Run]:
    picked: dict[int, dict[int, tuple[Segment, float | None]]] = defaultdict(dict)
    for window, selection in zip(windows, selections, strict=True):
        scores = selection.scores or {}
        for local in selection.tags:
            if 1 <= local <= window.n_tags:
                number = window.first_tag + local - 1
                picked[window.document_index][number] = (window.segments[local - 1], scores.get(local))
    runs: list[_Run] = []
    for doc_index in sorted(picked):
        numbers = sorted(picked[doc_index])
        current: _Run | None = None
        for number in numbers:
            segment, score = picked[doc_index][number]
            if current is not None and number == current.tags[-1] + 1:
                current.tags.append(number)
                current.segments.append(segment)
                if score is not None:
                    current.score = score if current.score is None else max(current.score, score)
                continue
            current = _Run(doc_index, [number], [segment], score, order=len(runs))
            runs.append(current)
    return runs


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _passage(doc: Document, tags: list[int], segments: list[Segment], score: float | None) -> Passage | None:
    start, end = _trimmed(doc.text, segments[0].start, segments[-1].end)
    if start == end:
        return None  # only whitespace was selected
    return Passage(doc.source, doc.title, tuple(tags), start, end, doc.text[start:end], score)


class Assembled(NamedTuple):
    passages: list[Passage]
    kept: int
    """Tokens of the passages returned."""
    left_out: int
    """Passages the token budget dropped or cut short."""


def assemble(
    documents: Sequence[Document],
    windows: Sequence[TaggedWindow],
    selections: Sequence[WindowSelection],
    *,
    counter: TokenCounter,
    max_tokens: int | None = None,
    max_passages: int | None = None,
) -> Assembled:
    """Return ``(passages, kept_tokens, left_out)``.

    Which passages: when the extractor scored its tags, the best are kept first under ``max_tokens``
    and ``max_passages``; otherwise reading order decides (source rank, then position). A passage that
    does not fit whole is cut back to its leading segments that do fit (still exact source text).
    Each passage the budget dropped or cut counts in ``left_out`` (``max_passages`` is a choice, not a
    loss, and does not count).

    In what order: documents by relevance (their best passage first), and within a document in
    reading order, so that an agent reads each page's passages as the page tells them.
    """
    runs = _selected_runs(windows, selections)
    if any(run.score is not None for run in runs):
        runs.sort(key=lambda r: (-(r.score if r.score is not None else float("-inf")), r.order))
    passages: list[Passage] = []
    documents_of: list[int] = []
    returned: set[tuple[str, ...]] = set()
    kept = 0
    left_out = 0
    for run in runs:
        if max_passages is not None and len(passages) >= max_passages:
            break
        doc = documents[run.document_index]
        passage = _passage(doc, run.tags, run.segments, run.score)
        if passage is None:
            continue
        words = tuple(_WORD.findall(passage.text.casefold()))
        if words and words in returned:
            continue
        returned.add(words)
        tokens = counter.count(passage.text)
        if max_tokens is not None and kept + tokens > max_tokens:
            left_out += 1
            passage, tokens = _fit_prefix(doc, run, counter, max_tokens - kept)
            if passage is None:
                continue
        passages.append(passage)
        documents_of.append(run.document_index)
        kept += tokens
    return Assembled(_reading_order(passages, documents_of), kept, left_out)


def _reading_order(passages: list[Passage], documents_of: list[int]) -> list[Passage]:
    """Documents in the order their first passage came (best first), each document's passages by offset."""
    rank: dict[int, int] = {}
    for document in documents_of:
        rank.setdefault(document, len(rank))
    order = sorted(range(len(passages)), key=lambda i: (rank[documents_of[i]], passages[i].start))
    return [passages[i] for i in order]


def _fit_prefix(doc: Document, run: _Run, counter: TokenCounter, budget: int) -> tuple[Passage | None, int]:
    """Longest leading run of whole segments whose text fits ``budget`` tokens."""
    best: tuple[Passage | None, int] = (None, 0)
    for n in range(1, len(run.segments)):
        passage = _passage(doc, run.tags[:n], run.segments[:n], run.score)
        if passage is None:
            continue
        tokens = counter.count(passage.text)
        if tokens > budget:
            break
        best = (passage, tokens)
    return best
