"""The one tolerant parser for extractor answers: text in, window-local tag ids out.

Every LLM backend (and the evals, and the training data checks) reads answers through
``parse_tags``. It accepts the ZI-ISAG tag-only answer (``#Extracted Information Tag#: [[<T-1>],
[<T-3>~<T-5>]]``), the info+tag answer (``#Extracted Information#:\\n1. text[<T-14>]``) and the slips
small models make: ``[T-3]``, bare ``T-3`` in a list, ``</T-3>``, full-width characters, ranges in
either order, duplicates, prose or code fences around the list, ``None`` or ``[]``.

It never raises on model output and runs in linear time: one NFKC pass, then one ``finditer`` over a
pattern whose alternatives each start with a fixed character and contain a single unbounded run
(the digits), so no input can make the regex engine backtrack.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ParsedTags", "parse_tags", "format_tags", "TAG_ONLY_PREFIX", "INFO_PREFIX"]

TAG_ONLY_PREFIX = "#Extracted Information Tag#:"
INFO_PREFIX = "#Extracted Information#:"

_HYPHENS = "-\u2010\u2011\u2012\u2013\u2014\u2212"  # after "T": -, hyphen, nb-hyphen, figure, en, em, minus
# Between two tags: "~" (NFKC folds the full-width "～" into it), the wave dash and en/em dashes.
# A plain "-" is not a range: the model's "<T-3>-<T-5>" is ambiguous and "T-3" itself holds a hyphen.
_RANGE_SEPS = frozenset({"~", "\u301c", "\u2013", "\u2014"})
_MAX_DIGITS = 9  # longer numbers are out of range by definition; also keeps int() cheap and safe
_HUGE = 10**_MAX_DIGITS
_MAX_GROUP_ITEMS = 10_000  # ``groups`` is informational: stop recording it past this many ids

_TOKEN_RE = re.compile(
    rf"""
    (?P<square>[\[【]/?[Tt][{_HYPHENS}](?P<sq_num>\d+)[\]】])       # [T-3]  【T-3】
  | (?P<angle>[<〈《]/?[Tt][{_HYPHENS}](?P<an_num>\d+)[>〉》]?)      # <T-3>  </T-3>  <T-3
  | (?P<bare>/?(?<![A-Za-z0-9_])[Tt][{_HYPHENS}](?P<ba_num>\d+)(?P<ba_close>[>〉》])?)  # T-3  T-3>
  | (?P<open>[\[【])
  | (?P<close>[\]】])
    """,
    re.VERBOSE,
)
_NONE_WORD_RE = re.compile(r"(?<![A-Za-z])(?:none|null)(?![A-Za-z])", re.IGNORECASE)
# A whole answer (once prefixes, quotes, fences and punctuation are stripped) that means "nothing".
_NONE_WORDS = frozenset({"", "n/a", "nil", "nothing", "无", "没有", "空"})
_NONE_STRIP = " \t\r\n'\"`.,:;!。，：；！"

# The canonical tag-only answer (what ``format_tags`` writes and trained extractors answer), read
# without the general tokenizer: an ASCII answer that matches this whole is parsed group by group.
_CANON_TAG = r"<T-([1-9]\d{0,8})>"
_CANON_GROUP = rf"\[{_CANON_TAG}(?:~{_CANON_TAG})?\]"
_CANONICAL_RE = re.compile(
    rf"\s*(?:{re.escape(TAG_ONLY_PREFIX)}\s*)?\[(?:{_CANON_GROUP}(?:,\s*{_CANON_GROUP})*)?\]\s*"
)
_CANON_GROUP_RE = re.compile(_CANON_GROUP)


@dataclass(slots=True)
class ParsedTags:
    """What an answer selected, within ``1..n_tags``."""

    tags: list[int] = field(default_factory=list)
    """Unique, ascending, all within ``1..n_tags``."""
    groups: list[list[int]] = field(default_factory=list)
    """The model's grouping (one list per bracketed group), out-of-range ids removed; for information."""
    none: bool = False
    """The model explicitly answered None / an empty list / nothing."""
    failed: bool = False
    """No tag list and no explicit None: the answer could not be read."""
    dropped_out_of_range: int = 0
    """Ids named outside ``1..n_tags`` (0, or past the window); a repeated tag or range counts once."""
    truncated_ranges: int = 0
    """Ranges longer than ``max_range`` whose expansion was capped."""
    error: str | None = None


@dataclass(slots=True)
class _Item:
    lo: int
    hi: int
    strength: int  # 2: angle-bracketed tag, 1: [T-3] or a bare tag inside a list, 0: bare tag in prose
    group: int  # the innermost list bracket around it (0: none)
    is_range: bool = False


def _to_text(answer: object) -> str | None:
    if answer is None:
        return None
    if isinstance(answer, str):
        return answer
    if isinstance(answer, (list, tuple)):  # e.g. the upstream ``extractInfoTag`` field, a list of one string
        return "\n".join(_to_text(a) or "" for a in answer)
    return str(answer)


def _number(digits: str) -> int:
    # An over-long number is out of range for any window; a sentinel avoids a huge int().
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else _HUGE


def _tokenize(text: str) -> tuple[list[_Item], bool]:
    """Tag items (ranges already paired) and whether an empty list ``[]`` was seen."""
    items: list[_Item] = []
    stack: list[int] = []  # ids of the open list brackets
    next_list_id = 1
    empty_list = False
    prev_kind = ""  # "tag", "open" or "close"
    prev_end = 0
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or ""
        gap = text[prev_end : m.start()]
        if kind == "open":
            stack.append(next_list_id)
            next_list_id += 1
        elif kind == "close":
            empty_list = empty_list or (prev_kind == "open" and not gap.strip())
            if stack:
                stack.pop()
        else:
            if kind == "square":
                # "[T-3]" may be a tag in brackets or a one-item list of a bare tag: rank it with bare
                # tags in lists, so "[[T-2, T-4], [T-9]]" keeps all three.
                num, strength = _number(m.group("sq_num")), 1
            elif kind == "angle":
                num, strength = _number(m.group("an_num")), 2
            else:
                num = _number(m.group("ba_num"))
                strength = 2 if m.group("ba_close") else (1 if stack else 0)
            if prev_kind == "tag" and gap.strip() in _RANGE_SEPS:
                prev = items[-1]
                if prev.is_range:  # a chain "<T-1>~<T-3>~<T-5>": pair each endpoint with the one before
                    items.append(_Item(prev.hi, num, max(strength, prev.strength), prev.group, True))
                else:
                    prev.hi, prev.is_range = num, True
                    prev.strength = max(strength, prev.strength)
            else:
                items.append(_Item(num, num, strength, stack[-1] if stack else 0))
        prev_kind, prev_end = ("tag" if kind not in ("open", "close") else kind), m.end()
    return items, empty_list


def _explicit_none(text: str, empty_list: bool) -> bool:
    if empty_list or _NONE_WORD_RE.search(text):
        return True
    rest = text.replace(TAG_ONLY_PREFIX, "").replace(INFO_PREFIX, "")
    return rest.strip(_NONE_STRIP).lower() in _NONE_WORDS


def parse_tags(answer: str | None, n_tags: int, *, max_range: int = 256) -> ParsedTags:
    """Read the tag ids an extractor answer selects; never raises on any answer text.

    Ids outside ``1..n_tags`` are dropped and counted; a range longer than ``max_range`` ids expands
    to its first ``max_range`` ids only (counted in ``truncated_ranges``). The strongest form present
    wins: with any ``<T-3>`` in the answer, ``[T-3]`` and bare ``T-3`` mentions are taken for prose
    (the info+tag answer's text); otherwise ``[T-3]`` and bare tags inside a list; bare tags in prose last.
    """
    try:
        text = _to_text(answer)
    except Exception:  # an exotic object whose str() fails: still no exception for the caller
        return ParsedTags(failed=True, error="the answer is not text")
    if text is None or not text.strip():
        return ParsedTags(none=True)
    n_tags = min(max(0, n_tags), _HUGE - 1)
    max_range = max(1, max_range)
    if text.isascii() and _CANONICAL_RE.fullmatch(text):  # ASCII is its own NFKC form
        return _parse_canonical(text, n_tags, max_range)
    return _parse_general(text, n_tags, max_range)


def _parse_general(text: str, n_tags: int, max_range: int) -> ParsedTags:
    """Any answer: NFKC, tokenize, keep the strongest form present (see ``parse_tags``)."""
    text = unicodedata.normalize("NFKC", text)
    items, empty_list = _tokenize(text)

    best = max((it.strength for it in items), default=-1)
    if best < 0:
        if _explicit_none(text, empty_list):
            return ParsedTags(none=True)
        return ParsedTags(failed=True, error=f"no tag ids and no None in the answer ({len(text)} chars)")

    return _select(((it.lo, it.hi, it.group) for it in items if it.strength == best), n_tags, max_range)


def _parse_canonical(text: str, n_tags: int, max_range: int) -> ParsedTags:
    """``parse_tags`` of an answer ``_CANONICAL_RE`` matches whole: each bracketed group is one tag or
    one ``~`` range of angle-bracketed tags, its own group; no tokenizer, no NFKC (ASCII is its own)."""
    pairs = _CANON_GROUP_RE.findall(text)
    if not pairs:  # "[]": an explicit empty list
        return ParsedTags(none=True)
    ranges = [(int(first), int(last or first), group) for group, (first, last) in enumerate(pairs)]
    return _select(ranges, n_tags, max_range)


def _select(ranges: Iterable[tuple[int, int, int]], n_tags: int, max_range: int) -> ParsedTags:
    """The tags that ``(lo, hi, group)`` ranges select within ``1..n_tags``, as ``parse_tags`` reports them."""
    selected: set[int] = set()
    dropped = 0
    truncated = 0
    groups: dict[int, list[int]] = {}
    group_budget = _MAX_GROUP_ITEMS
    seen_ranges: set[tuple[int, int]] = set()
    shared_groups = False  # a group fed by several ranges may list an id twice
    for lo, hi, group in ranges:
        if lo > hi:
            lo, hi = hi, lo
        if (lo, hi) in seen_ranges:
            continue
        seen_ranges.add((lo, hi))
        if lo == hi and 1 <= lo <= n_tags:  # one tag in range: the common case, without a range object
            selected.add(lo)
            if group_budget > 0:
                group_budget -= 1
                members = groups.setdefault(group, [])
                shared_groups = shared_groups or bool(members)
                members.append(lo)
            continue
        if hi - lo + 1 > max_range:
            truncated += 1
            hi = lo + max_range - 1
        in_lo, in_hi = max(lo, 1), min(hi, n_tags)
        ids = range(in_lo, in_hi + 1)
        dropped += (hi - lo + 1) - len(ids)
        if not ids:
            continue
        selected.update(ids)
        if group_budget > 0:  # ``groups`` is for information: bounded work on adversarial answers
            group_budget -= len(ids)
            members = groups.setdefault(group, [])
            shared_groups = shared_groups or bool(members)
            members.extend(ids)
    return ParsedTags(
        tags=sorted(selected),
        groups=[list(dict.fromkeys(g)) for g in groups.values()] if shared_groups else list(groups.values()),
        dropped_out_of_range=dropped,
        truncated_ranges=truncated,
    )


def format_tags(tags: Iterable[int], *, prefix: str = TAG_ONLY_PREFIX + " ", max_run: int = 256) -> str:
    """The canonical ZI-ISAG tag-only answer for ``tags``.

    Consecutive ids become one ``~`` range (runs longer than ``max_run`` are split, so that
    ``parse_tags`` with the same ``max_range`` reads them back whole); no ids gives ``None``.

    >>> format_tags([5, 1, 3, 4])
    '#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-5>]]'
    """
    ids = sorted(set(tags))
    if ids and ids[0] < 1:
        raise ValueError(f"tag ids are 1-based; got {ids[0]}")
    if not ids:
        return prefix + "None"
    max_run = max(1, max_run)
    parts: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1 and i - start < max_run:
            prev = i
            continue
        parts.append(f"[<T-{start}>]" if start == prev else f"[<T-{start}>~<T-{prev}>]")
        if i is not None:
            start = prev = i
    return prefix + "[" + ", ".join(parts) + "]"
