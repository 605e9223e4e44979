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
  are exact.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError, InputError
from .segment import segment, split_segment
from .tokens import TokenCounter
from .types import Document, Segment, TaggedWindow

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
# Fast pre-check: a dash then a digit is rare in prose, while "t" is everywhere.
_DASH_DIGIT_RE = re.compile(rf"[{_HYPHENS}]\s*[{_DIGITS}]")
_T_SET = frozenset(_T_CHARS)
_LOOKBACK = 16  # how far before the "T" an opening bracket (with spaces and a slash) is looked for


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
    for m in _DASH_DIGIT_RE.finditer(text):
        j = m.start()
        while j > 0 and text[j - 1].isspace():  # spaces may sit between the "T" and the dash
            j -= 1
        if j > 0 and text[j - 1] in _T_SET and _LOOKALIKE_RE.match(text, j - 1, m.end()):
            return True
    return False


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
    body = _prompt_texts("".join(texts), list(texts))
    return "".join([f"<T-{k}>{t}</T-{k}>" for k, t in enumerate(body, 1)])


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


_TAG_COSTS: dict[tuple[str, str], list[int]] = {}


def _tag_costs(counter: TokenCounter, k: int) -> list[int]:
    """The cached table of ``tag_cost`` for this counter, holding at least local tags ``1..k``."""
    key = (type(counter).__qualname__, getattr(counter, "name", ""))
    costs = _TAG_COSTS.setdefault(key, [0])
    if k >= len(costs):
        new = range(len(costs), max(k + 1, 2 * len(costs), 64))
        pieces = [p for i in new for p in (f"<T-{i}>", f"</T-{i}>")]
        counts = count_texts(counter, pieces)
        costs.extend(counts[2 * j] + counts[2 * j + 1] for j in range(len(new)))
    return costs


def tag_cost(counter: TokenCounter, k: int) -> int:
    """Tokens of the markup around local tag ``k``: ``<T-k>`` plus ``</T-k>``."""
    return _tag_costs(counter, k)[k]


def window_cost(window: TaggedWindow, counter: TokenCounter) -> int:
    """The token cost ``build_windows`` keeps within ``window_tokens``: each segment's prompt text
    (neutralised) plus its two tags, all counted with ``counter``."""
    texts = [neutralize_tags(t) for t in window.plain_texts]
    return sum(count_texts(counter, texts)) + sum(tag_cost(counter, k) for k in range(1, window.n_tags + 1))


# --- Windows ----------------------------------------------------------------------------------
def _check_budget(counter: TokenCounter, window_tokens: int) -> None:
    if window_tokens < tag_cost(counter, 1) + 1:
        raise ConfigError(
            f"window_tokens={window_tokens} is too small: one tag alone costs {tag_cost(counter, 1)} "
            "tokens; use a budget of a few hundred tokens or more."
        )


def _pack(
    plain: list[str],
    prompt: list[str],
    costs: list[int],
    segments: Sequence[Segment],
    *,
    document_index: int,
    counter: TokenCounter,
    window_tokens: int,
) -> list[TaggedWindow]:
    windows: list[TaggedWindow] = []
    start = 0  # index of the window's first segment
    total = 0

    def emit(end: int) -> None:
        body = prompt[start:end]
        windows.append(
            TaggedWindow(
                document_index=document_index,
                window_index=len(windows),
                first_tag=start + 1,
                segments=tuple(segments[start:end]),
                tagged_text="".join([f"<T-{k}>{t}</T-{k}>" for k, t in enumerate(body, 1)]),
                plain_texts=tuple(plain[start:end]),
            )
        )

    table = _tag_costs(counter, 64)
    for j, cost in enumerate(costs):
        k = j - start + 1
        if k >= len(table):
            table = _tag_costs(counter, k)
        add = cost + table[k]
        if j > start and total + add > window_tokens:
            emit(j)
            start, total = j, cost + table[1]
        else:
            total += add
    if costs:
        emit(len(costs))
    return windows


def _prompt_texts(whole: str, plain: list[str]) -> list[str]:
    # One search over the whole text decides for all segments: a look-alike inside a segment is also
    # one in the text that contains it.
    if not has_tag_lookalike(whole):
        return plain
    return [neutralize_tags(t) for t in plain]


def build_windows(
    text: str,
    segments: Sequence[Segment],
    *,
    document_index: int,
    counter: TokenCounter,
    window_tokens: int,
) -> list[TaggedWindow]:
    """Pack consecutive ``segments`` of ``text`` into windows within ``window_tokens`` (see the module
    docstring for the measure). Tags restart at 1 in every window; ``first_tag`` is the
    document-level number of a window's ``<T-1>``."""
    _check_budget(counter, window_tokens)
    plain = [text[s.start : s.end] for s in segments]
    prompt = _prompt_texts(text, plain)
    costs = count_texts(counter, prompt)
    return _pack(
        plain, prompt, costs, segments, document_index=document_index, counter=counter, window_tokens=window_tokens
    )


def tag_document(
    document: Document,
    *,
    document_index: int,
    counter: TokenCounter,
    window_tokens: int,
    max_segment_chars: int = 2000,
) -> list[TaggedWindow]:
    """``segment`` + ``build_windows``, also cutting any segment whose tokens alone exceed the budget."""
    _check_budget(counter, window_tokens)
    text = document.text
    segs = segment(text, max_segment_chars=max_segment_chars)
    plain = [text[s.start : s.end] for s in segs]
    prompt = _prompt_texts(text, plain)
    costs = count_texts(counter, prompt)
    limit = window_tokens - tag_cost(counter, 1)
    for _ in range(8):  # each round at least halves an oversize segment; rarely needed at all
        over = [i for i, c in enumerate(costs) if c > limit and segs[i].end - segs[i].start > 1]
        if not over:
            break
        logger.debug("cutting %d segment(s) over %d tokens in document %d", len(over), limit, document_index)
        new_segs: list[Segment] = []
        todo = set(over)
        for i, s in enumerate(segs):
            if i in todo:
                chars = s.end - s.start
                new_segs.extend(split_segment(text, s, min(chars // 2, int(chars * limit / costs[i] * 0.9))))
            else:
                new_segs.append(s)
        segs = new_segs
        plain = [text[s.start : s.end] for s in segs]
        prompt = _prompt_texts(text, plain)
        costs = count_texts(counter, prompt)
    return _pack(plain, prompt, costs, segs, document_index=document_index, counter=counter, window_tokens=window_tokens)


def windows_from_texts(
    texts: Sequence[str],
    *,
    document_index: int,
    counter: TokenCounter,
    window_tokens: int,
) -> list[TaggedWindow]:
    """Windows over segments given as strings (for example HotpotQA's sentences): segment ``i`` is
    ``texts[i]``, at its offsets in ``"".join(texts)``, and stays one tag whatever its size."""
    segs: list[Segment] = []
    pos = 0
    for i, t in enumerate(texts):
        if not t:
            raise InputError(f"text #{i} is empty; a segment cannot be empty (drop or merge it first).")
        segs.append(Segment(pos, pos + len(t), "blank" if t.isspace() else "sentence"))
        pos += len(t)
    return build_windows(
        "".join(texts), segs, document_index=document_index, counter=counter, window_tokens=window_tokens
    )
