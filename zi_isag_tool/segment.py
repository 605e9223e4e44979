"""Lossless segmentation: markdown or plain text -> sentences and non-prose markdown blocks.

Contract (DESIGN.md, "Segment and tag"): ``"".join(text[s.start:s.end] for s in segment(text)) ==
text``; segments are contiguous, never empty, and each is at most ``max_segment_chars`` long.

Whitespace between two segments belongs to the *following* one (``"<T-2> It's..."``, as ZI-ISAG
writes it), whitespace at the end of the text to the last one. Every cut therefore sits right after
a non-whitespace character, except inside an over-long run of whitespace, which is cut hard.

The work is done by a handful of compiled regular expressions run over the whole text; Python code
only runs once per candidate boundary (about once per sentence), never once per character.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from collections.abc import Iterable

from .errors import ConfigError
from .types import Segment, SegmentKind

__all__ = ["segment", "split_segment", "ABBREVIATIONS", "MIN_SEGMENT_CHARS"]

MIN_SEGMENT_CHARS = 16
"""Smallest accepted ``max_segment_chars``."""

# Lower-cased, with their final dot. A '.' after one of these never ends a sentence. Words that are
# abbreviations mostly before a number (No. 5, Fig. 3, p. 12, vol. 2) are left out on purpose, since
# they are also ordinary sentence-final words ("The answer is no."): a '.' followed by a digit never
# ends a sentence anyway. Dotted initialisms (U.S., e.g., Ph.D.) and single capital initials
# (J. K. Rowling) are recognised by shape.
ABBREVIATIONS = frozenset(
    """
    mr. mrs. ms. mx. dr. prof. st. sr. jr. rev. hon. gen. col. capt. lt. sgt. cmdr. gov. sen. rep. pres.
    vs. v. etc. cf. viz. al. approx. ca. esp. incl. dept. inc. ltd. co. corp. llc. bros. mt. ave. blvd.
    jan. feb. apr. jun. jul. aug. sep. sept. oct. nov. dec. tue. tues. thu. thur. thurs. fri.
    """.split()
)

# Markdown blocks that are not prose, and blank lines, each matched with the newline before its line.
# The text is scanned as "\n" + text: the literal "\n" prefix lets the regex engine skip ahead fast,
# and a lookahead rejects ordinary lines before any alternative is tried.
_BLOCK_RE = re.compile(
    r"""
    \n(?=[ \t]*[`~\#*\-_+\u2022\d|\n\r\f\v]|[ \t]*\Z)(?:
      (?P<code>[ \t]{0,3}(?P<fence>`{3,}(?=[^`\n]*(?:\n|\Z))|~{3,})[^\n]*
          (?s:.*?)(?:\n[ \t]{0,3}(?P=fence)[`~]*[ \t]*(?=\n|\Z)|\Z))
    | (?P<heading>[ \t]{0,3}\#{1,6}(?:[ \t][^\n]*)?)(?=\n|\Z)
    | (?P<other>[ \t]{0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,}))(?=\n|\Z)
    | (?P<list_item>[ \t]*(?:[-*+\u2022]|\d{1,9}[.)])[ \t]+\S[^\n]*)
    | (?P<table_row>[ \t]*\|[^\n]*)
    | (?P<blank>[^\S\n]*)(?=\n)
    )
    """,
    re.VERBOSE,
)

_CLOSERS = "[\"'”’»」』）)\\]】〕〉》]"
# Lowercase letters outside ASCII live in these ranges (Latin-1 and Latin extended, IPA, Greek,
# Cyrillic, Armenian, Georgian, full-width); a sentence end followed by one is decided in Python.
_CASED_NON_ASCII = "\u00aa-\u02af\u0370-\u058f\u10a0-\u10ff\u1e00-\u1fff\u2c60-\u2c7f\ua640-\ua7ff\uff41-\uff5a"


def _abbreviation_lookbehinds() -> str:
    by_len: dict[int, list[str]] = {}
    for a in ABBREVIATIONS:
        stem = a[:-1]
        by_len.setdefault(len(stem), []).append(re.escape(stem))
    parts = [rf"(?<!\b(?i:{'|'.join(sorted(v))})\.)" for _, v in sorted(by_len.items())]
    parts.append(r"(?<!\b[A-Z]\.)")  # an initial: "J. K. Rowling"
    parts.append(r"(?<![A-Za-z]\.[A-Za-z]\.)")  # a dotted initialism: "e.g.", "U.S.", "Ph.D."
    return "".join(parts)


# Every sentence end in one pass. The pattern starts with a plain character class (the regex engine
# then scans for it fast); what follows the terminator decides, by alternative:
# * no group: a '.' that is not part of an ellipsis nor ends an abbreviation, or a run of '!'/'?'
#   (not after dots), closing quotes/brackets, whitespace, then anything but a lowercase letter or a
#   digit. A cut, with no further check (the common case);
# * "cased": the same, but the next word starts with a letter of a cased non-ASCII script (or a
#   non-ASCII digit): Python decides by Unicode case;
# * "cjk": CJK terminators, which need no space after them;
# * "glued": two sentences glued without a space ("interface.A lot of"): a terminator after two
#   lowercase letters, then a capitalised word; Python rules out URLs and file names.
_END_REST = (
    rf"(?:(?<=\.)(?![.\u2026])(?<![.\u2026]\.){_abbreviation_lookbehinds()}"
    rf"|(?<=[!?])(?<![.\u2026][!?])[!?]*){_CLOSERS}*"
)
_END_RE = re.compile(
    rf"""[.!?。！？｡](?:
      (?=[.!?]*{_CLOSERS}*\s)  # cheap test first: whitespace follows ("3.14", "a.b" fail here)
      {_END_REST}(?=\s+(?:[^\s\d{_CASED_NON_ASCII}a-z]|(?P<cased>[{_CASED_NON_ASCII}]|(?![0-9])\d)))
    | (?<=[。！？｡])(?P<cjk>[.!?\u2026。！？｡]*{_CLOSERS}*)
    | (?<=[a-z]{{2}}[.!?])(?P<glued>)(?=[A-Z](?:[a-z]+[\s,;:]|\s))
    )""",
    re.VERBOSE,
)

_LAST_BREAK_RE = re.compile(r".*\S(?=\s)", re.DOTALL)


def _token_before(text: str, pos: int) -> str:
    """The whitespace-free token ending at ``pos`` (at most 40 characters of it)."""
    window = text[max(0, pos - 40) : pos]
    parts = window.rsplit(None, 1)
    if not parts or window[-1].isspace():
        return ""
    return parts[-1]


def _sentence_cuts(text: str) -> list[int]:
    """Offsets right after each sentence end (before the whitespace that follows it)."""
    cuts: list[int] = []
    for m in _END_RE.finditer(text):
        group = m.lastgroup
        if group is None or group == "cjk":
            cuts.append(m.end())
        elif group == "cased":
            nxt = m.group("cased")
            if not (nxt.islower() or nxt.isdigit()):
                cuts.append(m.end())
        else:
            token = _token_before(text, m.start())
            if not any(c in token for c in "/@:."):  # not a URL, e-mail, path or dotted name
                cuts.append(m.end())
    return cuts


def _content_end(text: str, pos: int) -> int:
    """``pos`` moved back over whitespace (not below 0)."""
    while pos > 0:
        lo = max(0, pos - 256)
        stripped = text[lo:pos].rstrip()
        if stripped:
            return lo + len(stripped)
        pos = lo
    return 0


def _split_long(text: str, start: int, end: int, limit: int) -> list[int]:
    """Cut points (exclusive of ``start``/``end``) keeping every piece of ``[start, end)`` within
    ``limit`` characters: at the last whitespace after a word in the second half of each stretch,
    else hard."""
    cuts: list[int] = []
    pos = start
    while end - pos > limit:
        lo = pos + limit // 2
        hi = pos + limit
        m = _LAST_BREAK_RE.match(text, lo, hi)
        cut = m.end() if m else hi
        cuts.append(cut)
        pos = cut
    return cuts


def segment(text: str, *, max_segment_chars: int = 2000) -> list[Segment]:
    """Split ``text`` into contiguous, non-empty, lossless segments (see the module docstring).

    Sentence ends: ``. ! ?`` followed by whitespace and ``。！？`` (closing quotes/brackets stay with
    their sentence); not after a decimal point, inside URLs, e-mails or domains, after an ellipsis,
    a known abbreviation or an initial, nor before a lowercase word or a digit. Non-prose markdown
    blocks are whole segments: ATX headings, list items, table rows, thematic breaks (``other``) and
    fenced code blocks. Empty lines end a paragraph. Anything longer than ``max_segment_chars`` is cut
    at whitespace (or hard, when there is none), so segments stay bounded even for one 5 MB line.
    """
    if max_segment_chars < MIN_SEGMENT_CHARS:
        raise ConfigError(f"max_segment_chars must be at least {MIN_SEGMENT_CHARS}, got {max_segment_chars}.")
    n = len(text)
    if n == 0:
        return []
    last_content = len(text.rstrip())
    if last_content == 0:  # whitespace only: one blank segment (cut hard only when over-long)
        bounds = [0, *_split_long(text, 0, n, max_segment_chars), n]
        return [Segment(a, b, "blank") for a, b in zip(bounds, bounds[1:], strict=False)]

    # 1. Non-prose blocks: [start, end) of their line(s), and the cut before and after each.
    block_starts: list[int] = []
    block_ends: list[int] = []
    cuts: list[int] = []
    kind_at: dict[int, SegmentKind] = {}
    last_blank = -1
    for m in _BLOCK_RE.finditer("\n" + text):
        kind = m.lastgroup or "other"  # the outermost group that matched ("code", not "fence")
        start, end = m.start(kind) - 1, m.end() - 1  # offsets in ``text``: drop the leading "\n"
        if kind == "blank":  # an empty line ends a paragraph; cut once per run of them
            if not (last_blank >= 0 and (last_blank == start or text[last_blank:start].isspace())):
                cuts.append(_content_end(text, start))
            last_blank = end
            continue
        block_starts.append(start)
        block_ends.append(end)
        before = _content_end(text, start)
        cuts.append(before)
        cuts.append(_content_end(text, end))
        kind_at[before] = kind  # type: ignore[assignment]

    def inside_block(pos: int) -> bool:
        i = bisect.bisect_right(block_starts, pos - 1) - 1  # last block starting before pos
        return i >= 0 and pos < block_ends[i]

    # 2. Sentence ends outside blocks. (Blank lines inside code blocks were consumed by the block.)
    for c in _sentence_cuts(text):
        if not (block_starts and inside_block(c)):
            cuts.append(c)

    # 3. Keep cuts that leave content on both sides; then bound every segment's length.
    ordered = sorted(set(cuts))
    bounds = [0, *ordered[bisect.bisect_right(ordered, 0) : bisect.bisect_left(ordered, last_content)], n]
    starts, ends = bounds[:-1], bounds[1:]
    sentence: SegmentKind = "sentence"
    kinds: Iterable[SegmentKind] = [kind_at.get(a, sentence) for a in starts] if kind_at else itertools.repeat(sentence)
    if max(map(operator.sub, ends, starts)) <= max_segment_chars:
        return list(map(Segment, starts, ends, kinds))
    segments: list[Segment] = []
    for a, b, kind in zip(starts, ends, kinds, strict=False):
        if b - a <= max_segment_chars:
            segments.append(Segment(a, b, kind))
            continue
        pieces = [a, *_split_long(text, a, b, max_segment_chars), b]
        segments.extend(Segment(p, q, kind) for p, q in zip(pieces, pieces[1:], strict=False))
    return segments


def split_segment(text: str, seg: Segment, max_chars: int) -> list[Segment]:
    """``seg`` cut into pieces of at most ``max_chars`` characters the way ``segment`` bounds long
    segments (used to cap segments by tokens, not only characters)."""
    max_chars = max(max_chars, 2)
    pieces = [seg.start, *_split_long(text, seg.start, seg.end, max_chars), seg.end]
    return [Segment(a, b, seg.kind) for a, b in zip(pieces, pieces[1:], strict=False)]
