"""Tagging: segments -> token-bounded windows of ``<T-1>…</T-1><T-2>…</T-2>…`` (ZI-ISAG's format).

* Injection safety. Anything in the content that the tag parser (``parser.parse_tags``) could read
  as a tag is rewritten in the prompt text by ``neutralize_tags``: the ``T`` becomes a look-alike
  letter and the brackets around it look-alike brackets (``<T-3>`` -> ``‹Т-3›``). The pipeline never
  returns that text: passages are ``document.text[start:end]`` by offsets, so they are the original.
* Windows. Consecutive segments are packed while the window's token cost stays within
  ``window_tokens``. The cost is measured with the caller's ``TokenCounter``: the count of each
  segment's prompt text plus the count of its two tags (``<T-k>`` and ``</T-k>``, counted for the
  actual local number ``k``). Only a single segment that alone exceeds the budget gets a window of
  its own above it. Interplay with the segmenter: ``segment``'s ``max_segment_chars`` bounds every
  segment by characters; ``tag_document`` also cuts any segment whose tokens alone exceed the budget
  (CJK or unusual scripts can take one token per character or more), so its windows are always
  within budget unless the budget is below a handful of tokens.
* Speed. Counting each segment with its own call (or with tiktoken's thread-pool batch) costs far
  more than the encoding itself. For tiktoken counters all segments of a document are encoded in a
  single call, joined by ``<|endoftext|>`` with that special token allowed: the encoder splits on
  special tokens before anything else, so each piece is encoded exactly as on its own and the counts
  are exact. That encoding then dominates: callers that already hold the counts (a cache, a
  benchmark) pass them as ``costs`` (``prompt_costs`` computes them). The rest works per document or
  per window, not per segment, where it can: one search of the whole text for look-alikes (only the
  segments holding one are rewritten), prefix sums and a bisection per window for the packing, and
  one ``join`` over precomputed tag strings per window for the tagged text.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import operator
import re
import threading
from collections.abc import Sequence
from typing import Any

from ._slots import build_from_columns, dataclass_slot_setters
from .errors import ConfigError, InputError
from .segment import SegmentView, _rare_matches, segment_bounds, split_segment
from .tokens import TokenCounter
from .types import Document, Segment, SegmentKind, TaggedWindow

__all__ = [
    "neutralize_tags",
    "restore_tags",
    "has_tag_lookalike",
    "render_tagged",
    "count_texts",
    "tag_cost",
    "window_cost",
    "build_windows",
    "tag_document",
    "windows_from_texts",
    "prompt_costs",
]

logger = logging.getLogger(__name__)

# --- Tag look-alikes --------------------------------------------------------------------------
# The parser NFKC-normalises an answer, then reads "T" or "t", a hyphen or dash, and digits, with or
# without brackets. The classes below hold every character whose NFKC form is one of those, so a
# look-alike is found whatever compatibility form it is written in (full-width, small forms,
# mathematical and circled letters, superscript digits...).
_T_CHARS = (
    "Tt\u1d40\u1d57\u209c\u24c9\u24e3\uff34\uff54\U0001f143"
    "\U0001d413\U0001d447\U0001d47b\U0001d4af\U0001d4e3\U0001d517\U0001d54b\U0001d57f\U0001d5b3"
    "\U0001d5e7\U0001d61b\U0001d64f\U0001d683"
    "\U0001d42d\U0001d461\U0001d495\U0001d4c9\U0001d4fd\U0001d531\U0001d565\U0001d599\U0001d5cd"
    "\U0001d601\U0001d635\U0001d669\U0001d69d"
)
_HYPHENS = "\\-\u2010\u2011\u2012\u2013\u2014\u207b\u208b\u2212\ufe31\ufe32\ufe58\ufe63\uff0d"
_DIGITS = (
    "\\d\u00b2\u00b3\u00b9\u00bc-\u00be\u2070\u2074-\u2079\u2080-\u2089\u2150-\u215f\u2189"
    "\u2460-\u249b\u24ea\u3251-\u325f\u32b1-\u32cb\u3358-\u3370\u33e0-\u33fe\U0001f100-\U0001f10a"
)
_SLASHES = "/\uff0f"
# Brackets the parser accepts, in every compatibility form, and what each becomes. The plain and
# full-width forms map one-to-one (so ``restore_tags`` can invert them); rarer compatibility forms map
# to the replacement of their NFKC form.
_PRIMARY_MAP = {
    "<": "\u2039", ">": "\u203a",  # ‹ ›
    "[": "\u2045", "]": "\u2046",  # ⁅ ⁆
    "\uff1c": "\u276e", "\uff1e": "\u276f",  # ＜＞ -> ❮ ❯
    "\uff3b": "\u27e6", "\uff3d": "\u27e7",  # ［］ -> ⟦ ⟧
    "\u3008": "\u27e8", "\u3009": "\u27e9",  # 〈〉 -> ⟨ ⟩
    "\u300a": "\u00ab", "\u300b": "\u00bb",  # 《》 -> « »
    "\u3010": "\u3016", "\u3011": "\u3017",  # 【】 -> 〖 〗
    "T": "\u0422", "t": "\u0442",  # Cyrillic Т т
    "\uff34": "\u01ac", "\uff54": "\u01ad",  # Ｔｔ -> Ƭ ƭ
}  # fmt: skip
_COMPAT_MAP = {
    "\ufe64": "<", "\ufe65": ">", "\ufe47": "[", "\ufe48": "]",
    "\u2329": "\u3008", "\ufe3f": "\u3008", "\u232a": "\u3009", "\ufe40": "\u3009",
    "\ufe3d": "\u300a", "\ufe3e": "\u300b", "\ufe3b": "\u3010", "\ufe3c": "\u3011",
}  # fmt: skip
_OPEN_CHARS = "<[\uff1c\uff3b\u3008\u300a\u3010\ufe64\ufe47\u2329\ufe3f\ufe3d\ufe3b"
_CLOSE_CHARS = ">]\uff1e\uff3d\u3009\u300b\u3011\ufe65\ufe48\u232a\ufe40\ufe3e\ufe3c"
_NEUTRAL = {**_PRIMARY_MAP, **{k: _PRIMARY_MAP[v] for k, v in _COMPAT_MAP.items()}}
for _c in _T_CHARS:
    _NEUTRAL.setdefault(_c, _PRIMARY_MAP["T" if _c.isupper() or _c in "\u1d40\u24c9\U0001f143" else "t"])
_RESTORE = {v: k for k, v in _PRIMARY_MAP.items()}


# "T", dash, digit, and the closing bracket when present. The parser also reads a bare "T-3" unless a
# letter or digit precedes the "T", so bare forms count too (only an ASCII or full-width letter,
# digit or "_" before the "T" makes it harmless). The pattern starts with a character class so the
# regex engine scans fast; the opening bracket is found by looking back a few characters.
def _cls(chars: str) -> str:
    return "".join(re.escape(c) for c in chars)


_REPL_OPEN = "".join(_PRIMARY_MAP[c] for c in "<[\uff1c\uff3b\u3008\u300a\u3010")
_REPL_CLOSE = "".join(_PRIMARY_MAP[c] for c in ">]\uff1e\uff3d\u3009\u300b\u3011")
_REPL_T = "\u0422\u0442\u01ac\u01ad"
_LOOKALIKE_RE = re.compile(
    rf"[{_T_CHARS}](?<![A-Za-z0-9_\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\uff3f].)"
    rf"\s*[{_HYPHENS}]\s*[{_DIGITS}]+(?:\s*(?P<close>[{_cls(_CLOSE_CHARS)}]))?"
)
_NEUTRALIZED_RE = re.compile(
    rf"[{_REPL_T}]\s*[{_HYPHENS}]\s*[{_DIGITS}]+(?:\s*(?P<close>[{_cls(_REPL_CLOSE)}]))?"
)
_OPEN_BEFORE_RE = re.compile(rf"(?P<open>[{_cls(_OPEN_CHARS)}])\s*(?:[{_SLASHES}]\s*)?\Z")
_REPL_OPEN_BEFORE_RE = re.compile(rf"(?P<open>[{_cls(_REPL_OPEN)}])\s*(?:[{_SLASHES}]\s*)?\Z")
# Fast pre-check: a dash then a digit is rare in prose, while "t" is everywhere. One pattern per dash
# character, starting with that literal character, which the regex engine finds far faster than a
# character class; only the dashes a text contains are looked for (``in`` is a fast search).
_HYPHEN_CHARS = _HYPHENS.replace("\\-", "-")  # ASCII first: the only one an ASCII text can hold
_DASH_DIGIT_RES = tuple((h, re.compile(rf"{re.escape(h)}\s*[{_DIGITS}]")) for h in _HYPHEN_CHARS)
_T_SET = frozenset(_T_CHARS)
_LOOKBACK = 16  # how far before the "T" an opening bracket (with spaces and a slash) is looked for


def _lookalike_starts(text: str) -> list[int]:
    """Offsets of every "T" that starts a look-alike core (T, dash, digit), sorted, whatever comes
    before the "T" (so a superset of the look-alikes, also of those of any substring)."""
    found: list[int] = []
    # ``in`` is a C-level scan: only the dashes a text holds cost a Python call (most texts hold
    # none of the rare ones, and an ASCII text none at all).
    candidates = (
        [hd for hd in _DASH_DIGIT_RES if hd[0] in text] if not text.isascii() else _DASH_DIGIT_RES[:1]
    )
    for hyphen, dash_digit in candidates:
        # str.find skips to each dash faster than the regex engine scans (a dash is rare).
        for m in _rare_matches(dash_digit, text, hyphen):
            j = m.start()
            while j > 0 and text[j - 1].isspace():  # spaces may sit between the "T" and the dash
                j -= 1
            if j > 0 and text[j - 1] in _T_SET:
                found.append(j - 1)
    found.sort()
    return found


def _rewrite(text: str, core: re.Pattern[str], opener: re.Pattern[str], table: dict[str, str]) -> str:
    """Swap, through ``table``, the "T" of every ``core`` match, its closing bracket, and the opening
    bracket just before it (``opener`` over the few characters before the "T")."""
    chars: list[str] | None = None
    for m in core.finditer(text):
        if chars is None:
            chars = list(text)
        t = m.start()
        chars[t] = table.get(chars[t], chars[t])
        close = m.start("close")
        if close >= 0:
            chars[close] = table.get(chars[close], chars[close])
        o = opener.search(text, max(0, t - _LOOKBACK), t)
        if o is not None:
            i = o.start("open")
            chars[i] = table.get(chars[i], chars[i])
    return text if chars is None else "".join(chars)


def has_tag_lookalike(text: str) -> bool:
    """Whether ``text`` holds anything ``neutralize_tags`` would rewrite."""
    return any(_LOOKALIKE_RE.match(text, t) for t in _lookalike_starts(text))


def neutralize_tags(text: str) -> str:
    """Rewrite every tag look-alike (``<T-3>``, ``</t-3>``, ``< T - 3 >``, ``＜Ｔ－３＞``, ``[T-3]``,
    ``【T-3】``, a bare ``T-3``...) so no tag parser can read it, keeping it readable:
    ``<T-3>`` -> ``‹Т-3›`` (Cyrillic Т, single angle quotes). Text without look-alikes is returned
    as is (the same object)."""
    if not has_tag_lookalike(text):
        return text
    return _rewrite(text, _LOOKALIKE_RE, _OPEN_BEFORE_RE, _NEUTRAL)


def restore_tags(neutralized: str) -> str:
    """Invert ``neutralize_tags``.

    Exact when the original text contained none of the replacement characters in a tag-like
    position (``‹Т-3›``, ``Т-3`` with a Cyrillic Т, ...) and wrote its look-alikes with ASCII or
    full-width characters; rarer compatibility forms (small-form brackets, mathematical or circled
    letters) come back as their ASCII/full-width form. The pipeline does not need it: it returns
    original text by offsets.
    """
    return _rewrite(neutralized, _NEUTRALIZED_RE, _REPL_OPEN_BEFORE_RE, _RESTORE)


def render_tagged(texts: Sequence[str]) -> str:
    """``<T-1>t1</T-1><T-2>t2</T-2>…`` with look-alikes in the texts neutralised; no separators."""
    plain = list(texts)
    return _tagged_text(
        _prompt_texts("".join(plain), plain, list(itertools.accumulate(map(len, plain), initial=0)))
    )


# Markup between segment texts, built once and reused: ``between[0]`` is "<T-1>", ``between[k]`` is
# "</T-k><T-k+1>", and ``close[k]`` is "</T-k>". Grown by replacing the pair (threads may share it).
_MARKUP: tuple[list[str], list[str]] = (["<T-1>"], [""])


def _markup(m: int) -> tuple[list[str], list[str]]:
    global _MARKUP
    between, close = _MARKUP
    if m >= len(between):
        size = max(2 * m, 256)
        between = ["<T-1>", *[f"</T-{k}><T-{k + 1}>" for k in range(1, size)]]
        close = ["", *[f"</T-{k}>" for k in range(1, size)]]
        _MARKUP = (between, close)
    return between, close


def _tagged_text(body: list[str]) -> str:
    """``<T-1>body[0]</T-1><T-2>body[1]</T-2>…``: a single join over precomputed markup."""
    m = len(body)
    if not m:
        return ""
    between, close = _markup(m)
    parts = [""] * (2 * m + 1)
    parts[0 : 2 * m : 2] = between[:m]
    parts[1 : 2 * m : 2] = body
    parts[2 * m] = close[m]
    return "".join(parts)


# --- Token counting ---------------------------------------------------------------------------
_EOT = "<|endoftext|>"


def _tiktoken_encoding(counter: TokenCounter) -> Any | None:
    """The ``tiktoken.Encoding`` behind ``counter`` when it is a plain tiktoken counter."""
    enc = getattr(counter, "encoding", None)
    try:
        import tiktoken
    except ImportError:  # pragma: no cover - tiktoken is a dependency
        return None
    if isinstance(enc, tiktoken.Encoding) and _EOT in enc.special_tokens_set:
        return enc
    return None


def count_texts(counter: TokenCounter, texts: Sequence[str]) -> list[int]:
    """``[counter.count(t) for t in texts]``, exactly, in as few encoder calls as possible."""
    if not texts:
        return []
    enc = _tiktoken_encoding(counter)
    if enc is None:
        return list(counter.count_many(list(texts)))
    joined = _EOT.join(texts)
    if joined.count(_EOT) != len(texts) - 1:  # some text holds the separator itself: count one by one
        return [len(enc.encode_ordinary(t)) for t in texts]
    import numpy as np

    ids = enc.encode_to_numpy(joined, allowed_special={_EOT}, disallowed_special=())
    seps = np.flatnonzero(ids == enc.eot_token)
    bounds = np.concatenate(([-1], seps, [len(ids)]))
    return (np.diff(bounds) - 1).tolist()


# Per counter: the token cost of the markup around local tags 0..len-1 (index 0 unused), and ``flat``,
# the largest k such that tags 1..k all cost the same. Grown by replacing the entry, so that threads
# sharing it always read a consistent pair.
_TAG_TABLES: dict[tuple[str, str], tuple[list[int], int]] = {}
_TAG_TABLES_LOCK = threading.Lock()


def _tag_table(counter: TokenCounter, k: int = 64) -> tuple[list[int], int]:
    """``(table, flat)`` for this counter, the table covering at least local tags ``1..k``."""
    key = type(counter).__qualname__, getattr(counter, "name", "")
    entry = _TAG_TABLES.get(key)
    if entry is not None and k < len(entry[0]):
        return entry
    with _TAG_TABLES_LOCK:
        entry = _TAG_TABLES.get(key)
        table = list(entry[0]) if entry is not None else [0]
        if k >= len(table):
            new = range(len(table), max(k + 1, 2 * len(table), 64))
            pieces = [p for i in new for p in (f"<T-{i}>", f"</T-{i}>")]
            counts = count_texts(counter, pieces)
            table.extend(counts[2 * j] + counts[2 * j + 1] for j in range(len(new)))
        flat = 1
        while flat + 1 < len(table) and table[flat + 1] == table[1]:
            flat += 1
        entry = _TAG_TABLES[key] = (table, flat)
    return entry


def _tag_costs(counter: TokenCounter, k: int) -> list[int]:
    """The cached table of ``tag_cost`` for this counter, holding at least local tags ``1..k``."""
    return _tag_table(counter, k)[0]


def tag_cost(counter: TokenCounter, k: int) -> int:
    """Tokens of the markup around local tag ``k``: ``<T-k>`` plus ``</T-k>``."""
    return _tag_costs(counter, k)[k]


def window_cost(window: TaggedWindow, counter: TokenCounter) -> int:
    """The token cost ``build_windows`` keeps within ``window_tokens``: each segment's prompt text
    (neutralised) plus its two tags, all counted with ``counter``."""
    texts = [neutralize_tags(t) for t in window.plain_texts]
    return sum(count_texts(counter, texts)) + sum(tag_cost(counter, k) for k in range(1, window.n_tags + 1))


# --- Windows ----------------------------------------------------------------------------------
def _check_budget(counter: TokenCounter, window_tokens: int) -> tuple[list[int], int]:
    """The counter's ``_tag_table``, once the budget is checked to hold at least one tag."""
    table, flat = _tag_table(counter)
    if window_tokens < table[1] + 1:
        raise ConfigError(
            f"window_tokens={window_tokens} is too small: one tag alone costs {table[1]} "
            "tokens; use a budget of a few hundred tokens or more."
        )
    return table, flat


def _window_ends(costs: list[int], counter: TokenCounter, window_tokens: int) -> list[int]:
    """Where each window ends: the greedy packing of ``costs`` (plus each tag's markup, by its local
    number) within ``window_tokens``, a lone segment over budget getting a window of its own.

    Tag markup usually costs the same for every local number up to some ``flat`` (for o200k_base,
    up to 999): there a window's cost is a difference of prefix sums, and each window end is one
    bisection. Past ``flat`` the window is packed one segment at a time."""
    table, flat = _tag_table(counter)
    c1 = table[1]
    prefix = list(itertools.accumulate(map(operator.add, costs, itertools.repeat(c1)), initial=0))
    n = len(costs)
    ends: list[int] = []
    start = 0
    while start < n:
        end = max(start + 1, bisect.bisect_right(prefix, prefix[start] + window_tokens, start + 1) - 1)
        if end - start >= flat and end < n:  # the bisection assumed flat markup: redo it exactly
            total, end = costs[start] + c1, start + 1
            while end < n:
                k = end - start + 1
                if k >= len(table):
                    table = _tag_costs(counter, k)
                if total + costs[end] + table[k] > window_tokens:
                    break
                total += costs[end] + table[k]
                end += 1
        ends.append(end)
        start = end
    return ends


def _pack(
    plain: list[str],
    prompt: list[str],
    costs: list[int],
    segments: Sequence[Segment],
    *,
    document_index: int,
    counter: TokenCounter,
    window_tokens: int,
    title: str = "",
) -> list[TaggedWindow]:
    """The windows over ``segments``: a ``SegmentView`` (each window gets a view of its run, no
    ``Segment`` built) or any other sequence (each window gets a tuple). Each field is built for all
    windows at once with ``map`` (C, not a Python loop per window)."""
    ends = _window_ends(costs, counter, window_tokens)
    if not ends:
        return []
    starts = [0, *ends[:-1]]
    runs = list(map(slice, starts, ends))
    views: list[Sequence[Segment]]
    if isinstance(segments, SegmentView):
        views = list(segments.runs(starts, ends))
    else:
        views = list(map(tuple, map(segments.__getitem__, runs)))
    _markup(max(map(operator.sub, ends, starts)))  # grown once, not per window
    plain_tuple = tuple(plain)  # a tuple's slices are tuples: one copy per window, not two
    return _make_windows(
        document_index,
        [s + 1 for s in starts],
        views,
        list(map(_tagged_text, map(prompt.__getitem__, runs))),
        list(map(plain_tuple.__getitem__, runs)),
        title,
    )


_WINDOW_FIELDS = ("document_index", "window_index", "first_tag", "segments", "tagged_text", "plain_texts", "title")
_WINDOW_SETTERS = dataclass_slot_setters(TaggedWindow, _WINDOW_FIELDS)


def _make_windows(
    document_index: int,
    first_tags: list[int],
    segments: list[Sequence[Segment]],
    tagged: list[str],
    plains: list[tuple[str, ...]],
    title: str,
) -> list[TaggedWindow]:
    """``TaggedWindow`` records, numbered from 0. The frozen dataclass's ``__init__`` stores each field
    through ``object.__setattr__``; when that is all it does, the slot setters called from C build
    the same objects faster."""
    n = len(first_tags)
    columns = (itertools.repeat(document_index, n), range(n), first_tags, segments, tagged, plains, itertools.repeat(title, n))
    if _WINDOW_SETTERS is None:
        return list(map(TaggedWindow, *columns))
    return build_from_columns(TaggedWindow, _WINDOW_SETTERS, columns, n)


_seg_start = operator.attrgetter("start")
_seg_end = operator.attrgetter("end")


def _plain_texts(text: str, segments: Sequence[Segment]) -> tuple[list[str], list[int]]:
    """Each segment's text, and each segment's start offset."""
    starts = list(map(_seg_start, segments))
    return list(map(text.__getitem__, map(slice, starts, map(_seg_end, segments)))), starts


def _prompt_texts(whole: str, plain: list[str], starts: list[int], *, ordered: bool = False) -> list[str]:
    """``plain`` with look-alikes neutralised, segment by segment. One search over the whole text
    finds where a look-alike may start; only the segments holding such a spot are looked at.
    ``ordered``: ``starts`` is known to ascend strictly (``segment_bounds``'s), no need to check."""
    spots = _lookalike_starts(whole)
    if not spots:
        return plain
    # A caller's segments out of order: look at each.
    if not ordered and any(map(operator.ge, starts, starts[1:])):
        return [neutralize_tags(t) for t in plain]
    prompt = list(plain)
    for i in {bisect.bisect_right(starts, t) - 1 for t in spots}:
        if i >= 0:
            prompt[i] = neutralize_tags(plain[i])
    return prompt


def prompt_costs(text: str, segments: Sequence[Segment], counter: TokenCounter) -> list[int]:
    """The token cost of each segment's prompt text (neutralised), as ``build_windows`` counts it.
    Callers that tag the same text again (benchmarks, caches) can keep it and pass it as ``costs``."""
    plain, starts = _plain_texts(text, segments)
    return count_texts(counter, _prompt_texts(text, plain, starts))


def build_windows(
    text: str,
    segments: Sequence[Segment],
    *,
    document_index: int,
    counter: TokenCounter,
    window_tokens: int,
    costs: Sequence[int] | None = None,
    title: str = "",
) -> list[TaggedWindow]:
    """Pack consecutive ``segments`` of ``text`` into windows within ``window_tokens`` (see the module
    docstring for the measure). Tags restart at 1 in every window; ``first_tag`` is the
    document-level number of a window's ``<T-1>``. ``costs``: each segment's prompt cost as
    ``prompt_costs`` gives it, when the caller has it already (then nothing is counted here).
    ``title``: the document's title, carried by every window as scoring context."""
    _check_budget(counter, window_tokens)
    plain, starts = _plain_texts(text, segments)
    prompt = _prompt_texts(text, plain, starts)
    costs = _checked_costs(costs, len(segments)) if costs is not None else count_texts(counter, prompt)
    return _pack(
        plain,
        prompt,
        costs,
        segments,
        document_index=document_index,
        counter=counter,
        window_tokens=window_tokens,
        title=title,
    )


def _checked_costs(costs: Sequence[int], n_segments: int) -> list[int]:
    if len(costs) != n_segments or (n_segments and min(costs) < 0):
        raise ConfigError(
            f"costs must hold one non-negative token count per segment ({n_segments} segments, {len(costs)} costs); "
            "compute them with prompt_costs over the same segments."
        )
    return costs if isinstance(costs, list) else list(costs)  # only read, never changed


def tag_document(
    document: Document,
    *,
    document_index: int,
    counter: TokenCounter,
    window_tokens: int,
    max_segment_chars: int = 2000,
    costs: Sequence[int] | None = None,
) -> list[TaggedWindow]:
    """``segment`` + ``build_windows``, also cutting any segment whose tokens alone exceed the budget.

    ``costs``: the prompt cost of each segment of ``segment(document.text, max_segment_chars=...)``
    as ``prompt_costs`` gives it, when the caller has it already (a cache, a benchmark): then only
    the pieces of segments cut for being over budget are counted here."""
    table, _ = _check_budget(counter, window_tokens)
    text = document.text
    starts, ends, kinds = segment_bounds(text, max_segment_chars=max_segment_chars)
    # A comprehension slices faster than map(text.__getitem__, map(slice, ...)) (measured: 2.0 vs 2.7 ms).
    plain = [text[a:b] for a, b in zip(starts, ends, strict=True)]
    prompt = _prompt_texts(text, plain, starts, ordered=True)
    costs = _checked_costs(costs, len(starts)) if costs is not None else count_texts(counter, prompt)
    limit = window_tokens - table[1]
    for _ in range(8):  # each round at least halves an oversize segment; rarely needed at all
        if not costs or max(costs) <= limit:
            break
        over = [i for i, c in enumerate(costs) if c > limit and ends[i] - starts[i] > 1]
        if not over:
            break
        logger.debug("cutting %d segment(s) over %d tokens in document %d", len(over), limit, document_index)
        starts, ends, kinds, new_costs = _cut_oversize(text, starts, ends, kinds, costs, over, limit)
        plain = [text[a:b] for a, b in zip(starts, ends, strict=True)]
        prompt = _prompt_texts(text, plain, starts, ordered=True)
        fresh = iter(count_texts(counter, [p for p, c in zip(prompt, new_costs, strict=True) if c is None]))
        costs = [next(fresh) if c is None else c for c in new_costs]
    return _pack(
        plain,
        prompt,
        costs,
        SegmentView(starts, ends, kinds),
        document_index=document_index,
        counter=counter,
        window_tokens=window_tokens,
        title=document.title,
    )


def _cut_oversize(
    text: str,
    starts: list[int],
    ends: list[int],
    kinds: list[SegmentKind] | None,
    costs: list[int],
    over: list[int],
    limit: int,
) -> tuple[list[int], list[int], list[SegmentKind], list[int | None]]:
    """The segments with those at ``over`` cut to about ``limit`` tokens each (by their share of
    characters), and the costs still valid (``None`` for the new pieces, to count)."""
    new_starts: list[int] = []
    new_ends: list[int] = []
    new_kinds: list[SegmentKind] = []
    new_costs: list[int | None] = []
    todo = set(over)
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        kind: SegmentKind = "sentence" if kinds is None else kinds[i]
        if i in todo:
            chars = b - a
            max_chars = min(chars // 2, int(chars * limit / costs[i] * 0.9))
            pieces = split_segment(text, Segment(a, b, kind), max_chars)
            new_starts += [p.start for p in pieces]
            new_ends += [p.end for p in pieces]
            new_kinds += [kind] * len(pieces)
            new_costs += [None] * len(pieces)
        else:
            new_starts.append(a)
            new_ends.append(b)
            new_kinds.append(kind)
            new_costs.append(costs[i])
    return new_starts, new_ends, new_kinds, new_costs


def windows_from_texts(
    texts: Sequence[str],
    *,
    document_index: int,
    counter: TokenCounter,
    window_tokens: int,
    kinds: Sequence[SegmentKind] | None = None,
    title: str = "",
) -> list[TaggedWindow]:
    """Windows over segments given as strings (for example HotpotQA's sentences): segment ``i`` is
    ``texts[i]``, at its offsets in ``"".join(texts)``, and stays one tag whatever its size.
    ``kinds``: each segment's kind (default: ``blank`` for whitespace, else ``sentence``)."""
    if kinds is not None and len(kinds) != len(texts):
        raise InputError(f"kinds must give one kind per text ({len(texts)} texts, {len(kinds)} kinds).")
    segs: list[Segment] = []
    pos = 0
    for i, t in enumerate(texts):
        if not t:
            raise InputError(f"text #{i} is empty; a segment cannot be empty (drop or merge it first).")
        kind: SegmentKind = kinds[i] if kinds is not None else ("blank" if t.isspace() else "sentence")
        segs.append(Segment(pos, pos + len(t), kind))
        pos += len(t)
    return build_windows(
        "".join(texts), segs, document_index=document_index, counter=counter, window_tokens=window_tokens,
        title=title,
    )
