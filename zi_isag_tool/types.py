"""Typed records passed between the stages: search -> fetch -> segment+tag -> extract -> assemble.

Offsets are always character offsets into ``Document.text`` (Python ``str`` indices), half-open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

SegmentKind = Literal["sentence", "heading", "list_item", "table_row", "code", "blank", "other"]

SourceStatus = Literal["ok", "blocked", "timeout", "too_large", "unsupported", "http_error", "error"]


@dataclass(frozen=True, slots=True)
class Link:
    """An outgoing link of a converted page: absolute http(s) target and the link's words."""

    url: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    """Text ready for tagging (markdown or plain), with where it came from."""

    source: str
    """URL, file path, or a caller-given id for raw text."""
    text: str
    title: str = ""
    links: tuple[Link, ...] = ()
    """Outgoing links of the page's main content, in reading order; their targets are not in ``text``."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One taggable unit of a document: ``document.text[start:end]``. Never empty."""

    start: int
    end: int
    kind: SegmentKind = "sentence"


@dataclass(frozen=True, slots=True)
class TaggedWindow:
    """A run of consecutive segments of one document, sized to fit the extractor.

    Tag ``i`` (1-based, restarting in every window) is ``segments[i - 1]``; its document-level
    number is ``first_tag + i - 1``.
    """

    document_index: int
    window_index: int
    first_tag: int
    """Document-level number (1-based) of this window's ``<T-1>``."""
    segments: Sequence[Segment]
    """A tuple, or an immutable lazy view (``segment.SegmentView``) that builds each ``Segment`` when read."""
    tagged_text: str
    """``<T-1>…</T-1><T-2>…</T-2>…`` with tag look-alikes in the content neutralised."""
    plain_texts: tuple[str, ...]
    """The original text of each segment, in order (same length as ``segments``)."""
    title: str = ""
    """The document's title: context for scoring its segments (scorer backends), never a tag."""

    @property
    def n_tags(self) -> int:
        return len(self.segments)

    def span(self, tag: int) -> tuple[int, int]:
        """Document character offsets of window-local tag ``tag`` (1-based)."""
        seg = self.segments[tag - 1]
        return seg.start, seg.end


@dataclass(slots=True)
class WindowSelection:
    """What an extractor chose in one window. Built by backends; never raises on bad model output."""

    tags: list[int]
    """Window-local tag ids, 1-based, unique, ascending."""
    scores: dict[int, float] | None = None
    """Optional relevance per selected tag (higher is better), used to rank passages under a budget."""
    raw_output: str | None = None
    """The model's answer for LLM backends; the canonical tag list for scorer backends."""
    prompt_tokens: int = 0
    output_tokens: int = 0
    dropped_out_of_range: int = 0
    failed: bool = False
    """True when the answer could not be parsed (the window then selects nothing)."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Passage:
    """Selected original text with provenance. ``text == document.text[start:end]`` exactly."""

    source: str
    title: str
    tags: tuple[int, ...]
    """Document-level segment numbers (1-based) covered by this passage."""
    start: int
    end: int
    text: str
    score: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "title": self.title,
            "tags": list(self.tags),
            "start": self.start,
            "end": self.end,
            "text": self.text,
        }


@dataclass(slots=True)
class SourceResult:
    """The fate of one source: ``ok`` or why not, with a short message safe to show anyone."""

    source: str
    status: SourceStatus = "ok"
    error: str | None = None
    """Why the source gave no text; on an ``ok`` source, a note (empty page, duplicate of another)."""
    title: str = ""
    duplicate_of: str | None = None
    """The earlier source this one repeats (the same URL once normalised, or nearly the same text):
    that source alone was extracted, and its outcome stands for both."""

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "status": self.status, "error": self.error}


@dataclass(slots=True)
class TokenUsage:
    """Token accounting for one call, in the counter's tokens (see ``Result.tokenizer``)."""

    content: int = 0
    """Tokens of the documents' text, before any tagging."""
    prompt: int = 0
    """Tokens of everything sent to the extractor (tagged windows, query, instructions)."""
    output: int = 0
    """Tokens written by the extractor."""
    kept: int = 0
    """Tokens of the passages returned."""

    def to_dict(self) -> dict[str, int]:
        return {"content": self.content, "prompt": self.prompt, "output": self.output, "kept": self.kept}


@dataclass(slots=True)
class Result:
    """What a pipeline call returns; ``to_dict()`` is the public JSON shape (DESIGN.md)."""

    query: str
    passages: list[Passage] = field(default_factory=list)
    sources: list[SourceResult] = field(default_factory=list)
    tokens: TokenUsage = field(default_factory=TokenUsage)
    extractor: str = ""
    tokenizer: str = ""
    windows: int = 0
    failed_windows: int = 0
    """Windows whose extraction failed (endpoint error, timeout, unparseable answer, budget spent)."""
    dropped_tags: int = 0
    """Tag ids the extractor named that were out of their window's range."""
    passages_left_out: int = 0
    """Selected passages the token budget dropped or cut short (a larger ``max_tokens`` returns them)."""
    warnings: list[str] = field(default_factory=list)
    """Short, safe lines on problems that did not stop the call: a search backend that failed while
    others served, a metasearch instance's engines that did not answer, a search without results,
    failed extraction windows (grouped by error), dropped tag ids."""
    documents: list[Document] = field(default_factory=list, repr=False)
    """The converted text each passage's offsets point into (not part of the JSON shape)."""

    @property
    def links(self) -> dict[str, tuple[Link, ...]]:
        """Outgoing links of each extracted source (``{source: links}``), kept out of the passages."""
        return {doc.source: doc.links for doc in self.documents}

    @property
    def extraction_failed(self) -> bool:
        """True when there was something to extract from and every window failed."""
        return self.windows > 0 and self.failed_windows == self.windows

    def to_dict(self) -> dict[str, object]:
        return {
            "query": self.query,
            "passages": [p.to_dict() for p in self.passages],
            "sources": [s.to_dict() for s in self.sources],
            "tokens": self.tokens.to_dict(),
            "passages_left_out": self.passages_left_out,
            "windows": self.windows,
            "failed_windows": self.failed_windows,
            "dropped_tags": self.dropped_tags,
            "warnings": list(self.warnings),
        }
