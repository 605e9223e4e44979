"""Lossless segmentation: markdown or plain text -> sentences and non-prose markdown blocks.

Contract (DESIGN.md, "Segment and tag"): ``"".join(text[s.start:s.end] for s in segment(text)) ==
text``; segments are contiguous, never empty, and each is at most ``max_segment_chars`` long.

Whitespace between two segments belongs to the *following* one (``"<T-2> It's..."``, as ZI-ISAG
writes it), whitespace at the end of the text to the last one. Every cut therefore sits right after
a non-whitespace character, except inside an over-long run of whitespace, which is cut hard.

Speed (a document has 10^4 segments or more, so per-segment Python code is what costs): a few
compiled regular expressions, each starting with a literal character the regex engine skips to
fast, find the sentence ends and the markdown blocks; their offsets are gathered with ``map`` over
the matches (C, not a Python loop); Python only looks at the rare matches that need a decision
(a cased non-ASCII next word, two sentences glued without a space) and once per markdown block.
``segment_bounds`` gives the offsets as lists for callers that need no ``Segment`` objects yet.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from collections.abc import Iterator, Sequence
from typing import overload

from ._slots import build_from_columns, dataclass_slot_setters
from .errors import ConfigError
from .types import Segment, SegmentKind

__all__ = [
    "segment",
    "segment_bounds",
    "make_segments",
    "SegmentView",
    "split_segment",
    "ABBREVIATIONS",
    "MIN_SEGMENT_CHARS",
]

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
# The literal "\n" lets the regex engine skip ahead fast, and a one-character lookahead rejects
# ordinary lines before any alternative is tried. The first line has no newline before it: when it may
# start a block, ``_FIRST_BLOCK_RE`` (the same alternatives, anchored at the start) is tried there.
_BLOCK_LINE = r"[ \t`~\#*\-_+\u2022\d|\n\r\f\v]|\Z"  # a line that may start a block (a superset)
_BLOCK_BODY = r"""(?:
      (?P<code>[ \t]{0,3}(?P<fence>`{3,}(?=[^`\n]*(?:\n|\Z))|~{3,})[^\n]*
          (?s:.*?)(?:\n[ \t]{0,3}(?P=fence)[`~]*[ \t]*(?=\n|\Z)|\Z))
    | (?P<heading>[ \t]{0,3}\#{1,6}(?:[ \t][^\n]*)?)(?=\n|\Z)
    | (?P<other>[ \t]{0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,}))(?=\n|\Z)
    | (?P<list_item>[ \t]*(?:[-*+\u2022]|\d{1,9}[.)])[ \t]+\S[^\n]*)
    | (?P<table_row>[ \t]*\|[^\n]*)
    | (?P<blank>[^\S\n]*)(?=\n)
    )
    """
_BLOCK_RE = re.compile(rf"\n(?={_BLOCK_LINE}){_BLOCK_BODY}", re.VERBOSE)
_FIRST_BLOCK_RE = re.compile(_BLOCK_BODY, re.VERBOSE)
_FIRST_LINE_RE = re.compile(_BLOCK_LINE)

_CLOSERS = "[\"'”’»」』）)\\]】〕〉》]"
# Lowercase letters outside ASCII live in these ranges (Latin-1 and Latin extended, IPA, Greek,
# Cyrillic, Armenian, Georgian, full-width); a sentence end followed by one is decided in Python.
_CASED_NON_ASCII = (
    "\u00aa-\u02af\u0370-\u058f\u10a0-\u10ff\u1e00-\u1fff\u2c60-\u2c7f\ua640-\ua7ff\uff41-\uff5a"
)


def _caseless_trie(words: list[str]) -> str:
    """A pattern matching any of ``words`` (of one length) in any letter case, as a trie: each branch
    starts with a character class, which the regex engine tests before entering the branch, so a
    word is rejected after one class test per first letter instead of one try per alternative."""
    by_first: dict[str, list[str]] = {}
    for w in sorted(words):
        by_first.setdefault(w[0], []).append(w[1:])
    alts = []
    for first, rests in by_first.items():
        cls = f"[{first.lower()}{first.upper()}]" if first.lower() != first.upper() else re.escape(first)
        alts.append(cls + (_caseless_trie(rests) if rests[0] else ""))
    return alts[0] if len(alts) == 1 else f"(?:{'|'.join(alts)})"


def _abbreviation_lookbehinds(min_len: int = 0) -> str:
    """Lookbehinds rejecting a '.' after an abbreviation (of a stem of ``min_len`` letters or more),
    and, when ``min_len`` is 0, after an initial or a dotted initialism."""
    by_len: dict[int, list[str]] = {}
    for a in ABBREVIATIONS:
        stem = a[:-1]
        by_len.setdefault(len(stem), []).append(stem)
    # ``\b`` first: inside a longer word it fails at once, before any letter is compared.
    parts = [rf"(?<!\b{_caseless_trie(v)}\.)" for n, v in sorted(by_len.items()) if n >= min_len]
    if min_len == 0:
        # An initial ("J. K. Rowling"), but not a temperature unit ("at 8 °C. At -15 °C..."): after "°"
        # a capital is a unit, and a sentence can end on it.
        parts.append(r"(?:(?<=°[A-Z]\.)|(?<!\b[A-Z]\.))")
        parts.append(r"(?<![A-Za-z]\.[A-Za-z]\.)")  # a dotted initialism: "e.g.", "U.S.", "Ph.D."
    return "".join(parts)


# Sentence ends, one pattern per terminator. Each pattern starts with its literal terminator, which the
# regex engine finds with a fast character search (a character class would be tested at every
# position, several times slower); '!' and '?' ends are rare, CJK ones rarer, and their patterns only
# run over texts that contain them. What follows the terminator decides, by alternative:
# * no group: a '.' that is not part of an ellipsis nor ends an abbreviation, or a run of '!'/'?'
#   (not after dots), closing quotes/brackets, whitespace, then anything but a lowercase letter or a
#   digit. A cut, with no further check (the common case);
# * group 1, "cased": the same, but the next word starts with a letter of a cased non-ASCII script
#   (or a non-ASCII digit): Python decides by Unicode case;
# * group 2, "glued": two sentences glued without a space ("interface.A lot of"): a terminator after
#   two lowercase letters, then a capitalised word; Python rules out URLs and file names.
# CJK terminators need no space after them and take the terminators and closers that follow.
# Closers, whitespace, then anything but a lowercase letter or a digit (cased scripts: see "cased").
_FOLLOW = rf"(?={_CLOSERS}*\s+(?:[^\s\d{_CASED_NON_ASCII}a-z]|(?P<cased>[{_CASED_NON_ASCII}]|(?![0-9])\d)))"
_GLUED_NEXT = r"(?=[A-Z](?:[a-z]+[\s,;:]|\s))"
_GLUED = rf"(?P<glued>){_GLUED_NEXT}"
# A glued end after a word of letters alone, after whitespace, needs no check of its token: these
# most common lengths are accepted by the pattern itself, without the "glued" group.
_PLAIN_WORD_BEFORE = "|".join(rf"(?<=\s[A-Za-z]{{{k}}}\.)" for k in range(2, 15))


def _end_re(terminator: str, rest: str, fast: str = "") -> re.Pattern[str]:
    """The pattern for one terminator. The lookahead comes first: most candidates ("3.14", "a.b",
    "e.g. apples") fail there, before the lookbehinds in ``rest`` run. ``fast``: an alternative
    tried first for the most common case."""
    t = re.escape(terminator)
    glued = rf"(?:{_PLAIN_WORD_BEFORE}){_GLUED_NEXT}|{_GLUED}" if t == r"\." else _GLUED
    return re.compile(rf"{t}(?:{fast}{_FOLLOW}{rest}{_CLOSERS}*|(?<=[a-z]{{2}}{t})(?:{glued}))")


# Nor after another '.'. Most words before a '.' end in four lowercase letters: then no initial,
# initialism, ellipsis or stem shorter than four can end there, and only the longer stems are tested.
_NOT_ABBREVIATED = (
    rf"(?:(?<=[a-z]{{4}}\.){_abbreviation_lookbehinds(4)}"
    rf"|(?<![.\u2026]\.){_abbreviation_lookbehinds()})"
)
# '.': the common case first, whitespace then an ASCII capital (no closers, nothing to capture).
_DOT_RE = _end_re(".", _NOT_ABBREVIATED, fast=rf"(?=\s+[A-Z]){_NOT_ABBREVIATED}|")
_BANG_RE = _end_re("!", r"(?<![.\u2026]!)[!?]*")
_QUESTION_RE = _end_re("?", r"(?<![.\u2026]\?)[!?]*")
_CJK_ENDS = "。！？｡"
_CJK_RE = re.compile(rf"[{_CJK_ENDS}][.!?\u2026{_CJK_ENDS}]*{_CLOSERS}*")
_CASED, _GLUED_GROUP = 1, 2  # group numbers (``Match.lastindex``) in the patterns above
# A glued end is not one when the token before it holds one of these (a URL, e-mail, path or name).
_DOTTED_TOKEN_RE = re.compile(r"[/@:.]\S*\Z")
_TOKEN_LOOKBACK = 40

_LAST_BREAK_RE = re.compile(r".*\S(?=\s)", re.DOTALL)
_match_end = re.Match.end
_match_start = re.Match.start
_match_group_index = operator.attrgetter("lastindex")


def _rare_matches(pattern: re.Pattern[str], text: str, terminator: str) -> list[re.Match[str]]:
    """``list(pattern.finditer(text))`` for a pattern that starts with ``terminator``, a character
    that few texts hold more than a few times: ``str.find`` skips to each one far faster than the
    regex engine's own scan, then the pattern is tried there."""
    matches = []
    match = pattern.match
    i = text.find(terminator)
    while i >= 0:
        m = match(text, i)
        if m is not None:
            matches.append(m)
        i = text.find(terminator, m.end() if m is not None else i + 1)
    return matches


def _ends(pattern: re.Pattern[str], text: str, rare: str = "") -> list[int]:
    """End offsets of ``pattern``'s accepted matches, in order. The work per match runs in C (``map``
    over the matches): Python only loops over the rare "cased" matches and the rejected ones.
    ``rare``: the pattern's first character, when it is rare (see ``_rare_matches``)."""
    matches = _rare_matches(pattern, text, rare) if rare else list(pattern.finditer(text))
    ends = list(map(_match_end, matches))
    groups = list(map(_match_group_index, matches))
    if groups.count(None) == len(groups):
        return ends
    special = list(itertools.compress(range(len(groups)), groups))
    if groups.count(_GLUED_GROUP) == len(special):  # all glued: check their tokens all at once
        at = list(map(_match_start, map(matches.__getitem__, special)))
        lo = map(max, itertools.repeat(0), map(operator.sub, at, itertools.repeat(_TOKEN_LOOKBACK)))
        dotted = map(_DOTTED_TOKEN_RE.search, itertools.repeat(text), lo, at)
        rejected = list(itertools.compress(special, dotted))
    else:
        rejected = [i for i in special if not _accept(text, matches[i], groups[i])]
    if not rejected:
        return ends
    keep = [True] * len(ends)
    for i in rejected:
        keep[i] = False
    return list(itertools.compress(ends, keep))


def _accept(text: str, m: re.Match[str], group: int) -> bool:
    if group == _CASED:  # a cut unless the next word starts lowercase or with a digit
        nxt = text[m.start(_CASED)]
        return not (nxt.islower() or nxt.isdigit())
    pos = m.start()  # glued: not after a URL, e-mail, path or dotted name
    return _DOTTED_TOKEN_RE.search(text, max(0, pos - _TOKEN_LOOKBACK), pos) is None


def _sentence_cuts(text: str) -> list[int]:
    """Offsets right after each sentence end (before the whitespace that follows it), ascending."""
    cuts = _ends(_DOT_RE, text)
    extra: list[int] = []
    if "!" in text:
        extra += _ends(_BANG_RE, text, "!")
    if "?" in text:
        extra += _ends(_QUESTION_RE, text, "?")
    if not text.isascii() and ("。" in text or "！" in text or "？" in text or "｡" in text):  # _CJK_ENDS
        # A CJK end may take '.', '!' or '?' after it: its cut can coincide with theirs.
        extra += map(_match_end, _CJK_RE.finditer(text))
        return sorted(set(cuts).union(extra))
    if extra:  # "?!" gives the same cut twice; '.' cuts never coincide with '!'/'?' ones
        cuts += set(extra)
        cuts.sort()  # two sorted runs: a linear merge
    return cuts


_SEGMENT_SETTERS = dataclass_slot_setters(Segment, ("start", "end", "kind"))
_SENTENCE: SegmentKind = "sentence"


def make_segments(
    starts: list[int], ends: list[int], kinds: list[SegmentKind] | None = None
) -> list[Segment]:
    """``list(map(Segment, starts, ends, kinds))``, ``kinds`` ``None`` meaning all "sentence".

    A document has 10^4 segments or more, and the dataclass ``__init__`` (a Python function storing
    three fields through ``object.__setattr__``) is then a large share of the time: when that is all
    it does, the same objects are built with the slot setters called from C (``_slots``)."""
    if _SEGMENT_SETTERS is None:
        return list(map(Segment, starts, ends, kinds or itertools.repeat(_SENTENCE)))
    return build_from_columns(
        Segment, _SEGMENT_SETTERS, (starts, ends, kinds or itertools.repeat(_SENTENCE)), len(starts)
    )


class SegmentView(Sequence[Segment]):
    """An immutable run ``[lo, hi)`` of a document's segments, held as offset lists: each ``Segment``
    is built only when read (indexing or iteration), so tagging a document builds none at all.

    The lists are shared by every view over the same document (``tag_document`` makes one set per
    call) and never changed after the views exist. Equal to another view or a tuple holding the same
    segments, and hashed like that tuple."""

    __slots__ = ("_starts", "_ends", "_kinds", "_lo", "_hi")

    def __init__(
        self,
        starts: list[int],
        ends: list[int],
        kinds: list[SegmentKind] | None = None,
        lo: int = 0,
        hi: int | None = None,
    ) -> None:
        self._starts = starts
        self._ends = ends
        self._kinds = kinds  # None: all "sentence"
        self._lo = lo
        self._hi = len(starts) if hi is None else hi

    def __len__(self) -> int:
        return self._hi - self._lo

    @overload
    def __getitem__(self, index: int) -> Segment: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Segment]: ...
    def __getitem__(self, index: int | slice) -> Segment | Sequence[Segment]:
        if isinstance(index, slice):
            r = range(self._lo, self._hi)[index]
            if r.step == 1:
                return SegmentView(self._starts, self._ends, self._kinds, r.start, max(r.start, r.stop))
            return tuple(map(self._segment, r))
        i = index + (self._hi if index < 0 else self._lo)
        if not self._lo <= i < self._hi:
            raise IndexError(f"segment index {index} out of range for {len(self)} segments")
        return self._segment(i)

    def runs(self, starts: list[int], ends: list[int]) -> list[SegmentView]:
        """``[self[a:b] for a, b in zip(starts, ends)]`` for runs within this view (``0 <= a < b <=
        len(self)``), built without per-run Python code."""
        lo = self._lo
        los = starts if lo == 0 else [a + lo for a in starts]
        his = ends if lo == 0 else [b + lo for b in ends]
        n = len(los)
        rep = itertools.repeat
        # Documents have hundreds of windows: set the slots from C rather than run __init__ per view.
        columns = (rep(self._starts, n), rep(self._ends, n), rep(self._kinds, n), los, his)
        return build_from_columns(SegmentView, _VIEW_SETTERS, columns, n)

    def _segment(self, i: int) -> Segment:
        return Segment(self._starts[i], self._ends[i], "sentence" if self._kinds is None else self._kinds[i])

    def __iter__(self) -> Iterator[Segment]:
        lo, hi = self._lo, self._hi
        kinds = None if self._kinds is None else self._kinds[lo:hi]
        return iter(make_segments(self._starts[lo:hi], self._ends[lo:hi], kinds))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SegmentView):
            return len(self) == len(other) and tuple(self) == tuple(other)
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"SegmentView({list(self)!r})"


_VIEW_SETTERS = tuple(getattr(SegmentView, name).__set__ for name in SegmentView.__slots__)


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
    return make_segments(*segment_bounds(text, max_segment_chars=max_segment_chars))


def segment_bounds(
    text: str, *, max_segment_chars: int = 2000
) -> tuple[list[int], list[int], list[SegmentKind] | None]:
    """``segment``'s result as three lists, ``starts``, ``ends`` and ``kinds`` (``None`` when all are
    "sentence"), for callers that work on offsets and need no ``Segment`` objects (or build them
    later, with ``make_segments``)."""
    if max_segment_chars < MIN_SEGMENT_CHARS:
        raise ConfigError(f"max_segment_chars must be at least {MIN_SEGMENT_CHARS}, got {max_segment_chars}.")
    n = len(text)
    if n == 0:
        return [], [], None
    last_content = len(text.rstrip())
    if last_content == 0:  # whitespace only: one blank segment (cut hard only when over-long)
        bounds = [0, *_split_long(text, 0, n, max_segment_chars), n]
        return bounds[:-1], bounds[1:], ["blank"] * (len(bounds) - 1)

    kind_at: dict[int, SegmentKind] = {}
    cuts = _with_blocks(text, _sentence_cuts(text), kind_at)

    # Keep cuts that leave content on both sides; then bound every segment's length.
    cuts = cuts[bisect.bisect_right(cuts, 0) : bisect.bisect_left(cuts, last_content)]
    starts = [0, *cuts]
    cuts.append(n)
    ends = cuts
    kinds: list[SegmentKind] | None = None
    if kind_at:
        kinds = ["sentence"] * len(starts)
        for pos, kind in kind_at.items():
            i = bisect.bisect_left(starts, pos)
            if i < len(starts) and starts[i] == pos:
                kinds[i] = kind
    if max(map(operator.sub, ends, starts)) <= max_segment_chars:
        return starts, ends, kinds
    bounded_starts: list[int] = []
    bounded_kinds: list[SegmentKind] = []
    sentence: SegmentKind = "sentence"
    for a, b, kind in zip(starts, ends, kinds or itertools.repeat(sentence), strict=False):
        pieces = [a, *_split_long(text, a, b, max_segment_chars)] if b - a > max_segment_chars else [a]
        bounded_starts += pieces
        bounded_kinds += [kind] * len(pieces)
    return bounded_starts, [*bounded_starts[1:], n], bounded_kinds


def _with_blocks(text: str, sentence_cuts: list[int], kind_at: dict[int, SegmentKind]) -> list[int]:
    """``sentence_cuts`` less those inside non-prose blocks, plus the cuts around blocks and at blank
    lines, ascending; ``kind_at`` gets the kind of the segment starting at each block's cut."""
    block_cuts: list[int] = []
    kept: list[int] = []
    done = 0  # sentence_cuts[:done] are decided
    last_blank = -1
    # The first line has no newline before it: a block there is matched by a pattern anchored at the
    # start, then the scan goes on from its end (as ``finditer`` over "\n" + text would, without the copy).
    first = _FIRST_BLOCK_RE.match(text) if _FIRST_LINE_RE.match(text) else None
    rest = _BLOCK_RE.finditer(text, first.end() if first is not None else 0)
    for m in itertools.chain((first,) if first is not None else (), rest):
        kind = m.lastgroup or "other"  # the outermost group that matched ("code", not "fence")
        start, end = m.start(kind), m.end()
        if kind == "blank":  # an empty line ends a paragraph; cut once per run of them
            if not (last_blank >= 0 and (last_blank == start or text[last_blank:start].isspace())):
                block_cuts.append(_content_end(text, start))
            last_blank = end
            continue
        before = _content_end(text, start)
        block_cuts.append(before)
        block_cuts.append(_content_end(text, end))
        kind_at[before] = kind  # type: ignore[assignment]
        # Sentence ends strictly inside the block are not cuts. (Blank lines inside code blocks were
        # consumed by the block.)
        inside = bisect.bisect_right(sentence_cuts, start, done)
        kept += sentence_cuts[done:inside]
        done = max(inside, bisect.bisect_left(sentence_cuts, end, inside))
    if not block_cuts:
        return sentence_cuts
    kept += sentence_cuts[done:]
    for c in sorted(set(block_cuts)):  # a few per document: insert them into the sorted cuts
        i = bisect.bisect_left(kept, c)
        if i == len(kept) or kept[i] != c:
            kept.insert(i, c)
    return kept


def split_segment(text: str, seg: Segment, max_chars: int) -> list[Segment]:
    """``seg`` cut into pieces of at most ``max_chars`` characters the way ``segment`` bounds long
    segments (used to cap segments by tokens, not only characters)."""
    max_chars = max(max_chars, 2)
    pieces = [seg.start, *_split_long(text, seg.start, seg.end, max_chars), seg.end]
    return [Segment(a, b, seg.kind) for a, b in zip(pieces, pieces[1:], strict=False)]
