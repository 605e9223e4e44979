"""Needle-in-a-haystack items from NeedleBench's English data, deterministic given a seed.

Source data (bundled in ``files/needlebench/``, copied from ZI-ISAG / OpenCompass NeedleBench; its
README says where each file comes from): ``PaulGrahamEssays.jsonl`` (the haystack),
``needles.jsonl`` (4 needle sets with a request each) and ``multi_needle_reasoning_en.json``
(multi-hop items derived from HotpotQA: facts + question).

An item is a haystack cut to a context length (in tokens, needles included) with needles inserted at a
depth. Needles are inserted at sentence boundaries, each as a sentence of its own (capitalised, with a
final period added when missing), so that a segmenter puts each needle in one segment; the item
returns the document text and each needle's character span, and the gold tags are the segments that
overlap a needle span (``gold_tags``), whatever the segmenter.

Item kinds:
- ``single``: NeedleBench's needle set 2 asks three questions about three unrelated needles; each
  question with its own needle is a single-needle item (3 items). The other sets' requests need every
  needle of the set, so they are not split.
- ``multi``: each needle set with its request, all needles inserted (3, 3, 5, 10 needles). As in
  NeedleBench's multi-needle test, the first needle goes at the depth and the others are spread evenly
  from there to the end: needle ``i`` of ``n`` at ``depth + i * (100 - depth) / n`` percent.
- ``multi_hop``: a HotpotQA-derived item; its derivations are the needles (spread the same way).
- negatives (``negative=True``): the question asked over the haystack with no needle; gold is empty.

The evals and the training recipe's gold route use the same builder (``NeedleBench.build_item`` and
``insert_needles``; it sits in the package, below both, so ``train`` never imports the eval harness),
so the split of multi-hop items is shared too: ``split_of(item_id)`` is ``calib`` iff
``int(sha256(id).hexdigest(), 16) % 10 < 3`` (a fixed 30%), else ``eval``. Evaluations default to the
``eval`` share; calibration and tuning must use ``calib`` only.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from zi_isag_tool.errors import InputError
from zi_isag_tool.tokens import TokenCounter, default_counter

from . import NEEDLEBENCH_DIR
from .jsonl import read_json_objects

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_LENGTHS",
    "DEFAULT_DEPTHS",
    "ItemKind",
    "Split",
    "NeedleSet",
    "MultiHopItem",
    "NeedleItem",
    "NeedleBench",
    "split_of",
    "normalize_needle",
    "sentence_boundaries",
    "insert_needles",
    "spread_depths",
    "gold_tags",
]

DEFAULT_DATA_DIR = NEEDLEBENCH_DIR
"""The bundled copy; ``NeedleBench(data_dir)`` reads another folder of the same layout."""
DEFAULT_LENGTHS: tuple[int, ...] = (1000, 2000, 4000, 8000, 12000)
DEFAULT_DEPTHS: tuple[float, ...] = (0.0, 25.0, 50.0, 75.0, 100.0)

ItemKind = Literal["single", "multi", "multi_hop"]
Split = Literal["calib", "eval"]

HAYSTACK_FILE = "PaulGrahamEssays.jsonl"
NEEDLES_FILE = "needles.jsonl"
MULTI_HOP_FILE = "multi_needle_reasoning_en.json"


def split_of(item_id: str) -> Split:
    """``calib`` for a fixed 30% of ids (by SHA-256), ``eval`` for the rest."""
    return "calib" if int(hashlib.sha256(item_id.encode("utf-8")).hexdigest(), 16) % 10 < 3 else "eval"


@dataclass(frozen=True, slots=True)
class NeedleSet:
    needles: tuple[str, ...]
    request: str
    index: int = 0


@dataclass(frozen=True, slots=True)
class MultiHopItem:
    id: str
    derivations: tuple[str, ...]
    question: str
    answer: str = ""
    type: str = ""
    level: str = ""


@dataclass(frozen=True, slots=True)
class NeedleItem:
    """A document with needles; ``text[s:e]`` for ``(s, e)`` in ``needle_spans`` is each needle."""

    id: str
    kind: ItemKind
    query: str
    text: str
    needle_spans: tuple[tuple[int, int], ...]
    context_tokens: int
    """The target length (tokens of the whole document, needles included)."""
    depth_percent: float
    negative: bool = False
    answer: str = ""
    source_id: str = ""
    """The needle set (``set-2``, ``set-2.q1``) or multi-hop item id it comes from."""
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def needles(self) -> list[str]:
        return [self.text[s:e] for s, e in self.needle_spans]


# --- text helpers ----------------------------------------------------------------------------

_TERMINAL = ".!?。！？"
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st vs etc e.g i.e jr sr prof inc ltd co corp no fig al approx dept est gen gov sen rep u.s".split()
)
# A sentence end: terminal punctuation, optional closing quotes/brackets, then whitespace before a
# capital letter, a digit or an opening quote. The boundary is where the next sentence starts.
_BOUNDARY_RE = re.compile(r"""(?<=[.!?])["')\]]*(\s+)(?=["'(\[]?[A-Z0-9])""")
_PARAGRAPH_RE = re.compile(r"\n\s*\n\s*(?=\S)")


def normalize_needle(text: str) -> str:
    """One sentence: stripped, first letter capitalised, ending with terminal punctuation."""
    text = " ".join(text.split())
    if not text:
        return text
    if text[0].islower():
        text = text[0].upper() + text[1:]
    if text[-1] not in _TERMINAL and not (text[-1] in "\"')" and len(text) > 1 and text[-2] in _TERMINAL):
        text += "."
    return text


def sentence_boundaries(text: str) -> list[int]:
    """Offsets where a new sentence starts (after whitespace), plus ``0`` and ``len(text)``.

    Inserting ``needle + " "`` at one of these offsets makes the needle a sentence of its own.
    Periods after common abbreviations ("Mr.", "e.g.") are not boundaries.
    """
    found = {0, len(text)}
    for m in _BOUNDARY_RE.finditer(text):
        head = text[max(0, m.start() - 6) : m.start()]
        word = re.split(r"[\s(\"']", head)[-1].rstrip(".!?\"')]").lower()
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):  # "J. Smith", "U."
            continue
        found.add(m.end())
    for m in _PARAGRAPH_RE.finditer(text):
        found.add(m.end())
    return sorted(found)


def spread_depths(depth_percent: float, n: int) -> list[float]:
    """NeedleBench's multi-needle placement: first at ``depth``, the rest evenly up to the end."""
    if n <= 0:
        return []
    step = (100.0 - depth_percent) / n
    return [depth_percent + i * step for i in range(n)]


def insert_needles(
    haystack: str, needles: Sequence[str], depths: Sequence[float]
) -> tuple[str, list[tuple[int, int]]]:
    """Insert each needle at the sentence boundary nearest its depth (percent of characters).

    Needles that land on the same boundary keep their given order. Returns the new text and one
    ``(start, end)`` span per needle, in the order given.
    """
    if len(needles) != len(depths):
        raise ValueError("insert_needles needs one depth per needle")
    haystack = haystack.strip()
    bounds = sentence_boundaries(haystack)
    placed: list[tuple[int, int, str]] = []  # (boundary, order, needle)
    for order, (needle, depth) in enumerate(zip(needles, depths, strict=True)):
        target = round(len(haystack) * min(max(depth, 0.0), 100.0) / 100.0)
        i = bisect.bisect_left(bounds, target)
        candidates = [b for b in (bounds[i - 1] if i > 0 else None, bounds[i] if i < len(bounds) else None) if b is not None]
        pos = min(candidates, key=lambda b: (abs(b - target), b))
        placed.append((pos, order, normalize_needle(needle)))
    placed.sort()
    pieces: list[str] = []
    spans: dict[int, tuple[int, int]] = {}
    cursor = 0
    length = 0
    for pos, order, needle in placed:
        chunk = haystack[cursor:pos]
        pieces.append(chunk)
        length += len(chunk)
        cursor = pos
        if pos >= len(haystack) and (length > 0):
            # At the very end: the needle follows the last sentence.
            pieces.append(" ")
            length += 1
            spans[order] = (length, length + len(needle))
            pieces.append(needle)
            length += len(needle)
        else:
            spans[order] = (length, length + len(needle))
            pieces.append(needle + " ")
            length += len(needle) + 1
    pieces.append(haystack[cursor:])
    text = "".join(pieces)
    return text, [spans[i] for i in range(len(needles))]


def gold_tags(segment_spans: Iterable[tuple[int, int]], needle_spans: Sequence[tuple[int, int]], text: str) -> set[int]:
    """1-based numbers of the segments that share a non-blank character with a needle."""
    gold: set[int] = set()
    for number, (start, end) in enumerate(segment_spans, start=1):
        for ns, ne in needle_spans:
            lo, hi = max(start, ns), min(end, ne)
            if lo < hi and text[lo:hi].strip():
                gold.add(number)
                break
    return gold


# --- data --------------------------------------------------------------------------------------


def _need(path: Path) -> Path:
    if not path.exists():
        raise InputError(
            f"NeedleBench file {path} not found; point --data at the needlebench folder "
            f"(holding {HAYSTACK_FILE}, {NEEDLES_FILE}, {MULTI_HOP_FILE})."
        )
    return path


class NeedleBench:
    """The NeedleBench English data, loaded lazily, and the item builder.

    >>> nb = NeedleBench()
    >>> item = nb.build_item(["The key is under the mat."], "Where is the key?", context_tokens=1000,
    ...                      depth_percent=50, seed=0)
    >>> item.needles
    ['The key is under the mat.']
    """

    def __init__(self, data_dir: str | Path | None = None, *, counter: TokenCounter | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
        if self.data_dir.is_file():
            self.data_dir = self.data_dir.parent
        self.counter = counter or default_counter()
        self._essays: list[str] | None = None
        self._needle_sets: list[NeedleSet] | None = None
        self._multi_hop: list[MultiHopItem] | None = None
        self._haystack_cache: dict[tuple[int, int], str] = {}

    # data -----------------------------------------------------------------------------------
    @property
    def essays(self) -> list[str]:
        if self._essays is None:
            rows = read_json_objects(_need(self.data_dir / HAYSTACK_FILE))
            self._essays = [str(r.get("text", "")).strip() for r in rows if str(r.get("text", "")).strip()]
            if not self._essays:
                raise InputError(f"{self.data_dir / HAYSTACK_FILE} holds no essay text")
        return self._essays

    @property
    def needle_sets(self) -> list[NeedleSet]:
        if self._needle_sets is None:
            rows = read_json_objects(_need(self.data_dir / NEEDLES_FILE))
            self._needle_sets = [
                NeedleSet(tuple(str(n) for n in needles), str(r["request"]), i)
                for i, r in enumerate(rows, start=1)
                if isinstance(needles := r.get("needles"), list) and needles and r.get("request")
            ]
        return self._needle_sets

    def multi_hop(self, split: Split | Literal["all"] = "eval") -> list[MultiHopItem]:
        if self._multi_hop is None:
            path = _need(self.data_dir / MULTI_HOP_FILE)
            try:
                rows = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not JSON ({exc.msg})") from exc
            self._multi_hop = [
                MultiHopItem(
                    id=str(r["id"]),
                    derivations=tuple(str(d) for d in r["derivations"]),
                    question=str(r["question"]),
                    answer=str(r.get("answer", "")),
                    type=str(r.get("type", "")),
                    level=str(r.get("level", "")),
                )
                for r in rows
                if r.get("id") and r.get("derivations") and r.get("question")
            ]
        if split == "all":
            return list(self._multi_hop)
        return [it for it in self._multi_hop if split_of(it.id) == split]

    def single_needles(self) -> list[tuple[str, str, str]]:
        """``(source_id, needle, question)`` for needle sets whose request asks one question per needle."""
        out: list[tuple[str, str, str]] = []
        for ns in self.needle_sets:
            questions = [q.strip() + "?" for q in ns.request.split("?") if q.strip()]
            if len(questions) == len(ns.needles) > 1:
                for j, (needle, question) in enumerate(zip(ns.needles, questions, strict=True), start=1):
                    out.append((f"set-{ns.index}.q{j}", needle, question))
        return out

    # haystack -----------------------------------------------------------------------------
    def haystack(self, tokens: int, *, seed: int = 0) -> str:
        """Essay text (from an essay chosen by ``seed``) cut at a sentence end to at most ``tokens``."""
        essays = self.essays
        start = random.Random(f"haystack:{seed}").randrange(len(essays))
        key = (start, tokens)
        if key in self._haystack_cache:
            return self._haystack_cache[key]
        # Enough essays for the length (o200k averages ~4 chars per token on English prose).
        parts: list[str] = []
        chars = 0
        i = start
        while chars < tokens * 6 + 2000 and len(parts) < len(essays):
            parts.append(essays[i % len(essays)])
            chars += len(parts[-1])
            i += 1
        full = "\n\n".join(parts)
        bounds = [b for b in sentence_boundaries(full) if b > 0]
        lo, hi = 0, len(bounds) - 1
        best = 0
        while lo <= hi:  # the longest prefix ending at a boundary that fits the budget
            mid = (lo + hi) // 2
            if self.counter.count(full[: bounds[mid]].rstrip()) <= tokens:
                best = bounds[mid]
                lo = mid + 1
            else:
                hi = mid - 1
        text = full[:best].rstrip()
        self._haystack_cache[key] = text
        return text

    def build_item(
        self,
        needles: Sequence[str],
        query: str,
        *,
        context_tokens: int,
        depth_percent: float,
        seed: int = 0,
        kind: ItemKind = "multi",
        item_id: str | None = None,
        negative: bool = False,
        answer: str = "",
        source_id: str = "",
    ) -> NeedleItem:
        """One item: the haystack for ``(context_tokens, seed)`` with ``needles`` spread from the depth.

        With ``negative=True`` no needle is inserted (the gold is empty), but the haystack is the one a
        positive item of the same needles would get, so negatives and positives are comparable.
        """
        if context_tokens < 64:
            raise ValueError("context_tokens must be at least 64")
        normalized = [normalize_needle(n) for n in needles if n.strip()]
        needle_tokens = sum(self.counter.count(n) + 1 for n in normalized)
        haystack = self.haystack(max(32, context_tokens - needle_tokens), seed=seed)
        spans: list[tuple[int, int]] = []
        if negative:
            text = haystack
        else:
            text, spans = insert_needles(haystack, normalized, spread_depths(depth_percent, len(normalized)))
        item_id = item_id or f"{source_id or 'item'}@{context_tokens}/{depth_percent:g}/s{seed}{'/neg' if negative else ''}"
        return NeedleItem(
            id=item_id,
            kind=kind,
            query=query,
            text=text,
            needle_spans=tuple(spans),
            context_tokens=context_tokens,
            depth_percent=float(depth_percent),
            negative=negative,
            answer=answer,
            source_id=source_id,
        )

    # item sets ------------------------------------------------------------------------------
    def _sources(
        self, kinds: Sequence[ItemKind], rng: random.Random, hop_items: int, split: Split | Literal["all"]
    ) -> list[tuple[ItemKind, str, list[str], str, str]]:
        """``(kind, source_id, needles, query, answer)`` for one grid cell."""
        out: list[tuple[ItemKind, str, list[str], str, str]] = []
        if "single" in kinds:
            out += [("single", sid, [needle], q, "") for sid, needle, q in self.single_needles()]
        if "multi" in kinds:
            out += [("multi", f"set-{ns.index}", list(ns.needles), ns.request, "") for ns in self.needle_sets]
        if "multi_hop" in kinds and hop_items > 0:
            pool = self.multi_hop(split)
            for it in rng.sample(pool, min(hop_items, len(pool))):
                out.append(("multi_hop", it.id, list(it.derivations), it.question, it.answer))
        return out

    def grid(
        self,
        *,
        lengths: Sequence[int] = DEFAULT_LENGTHS,
        depths: Sequence[float] = DEFAULT_DEPTHS,
        kinds: Sequence[ItemKind] = ("single", "multi", "multi_hop"),
        hop_items: int = 2,
        negatives_share: float = 0.0,
        split: Split | Literal["all"] = "eval",
        seed: int = 0,
    ) -> list[NeedleItem]:
        """Every (length, depth) cell with the single and multi-needle items and ``hop_items``
        multi-hop items drawn per cell; plus negatives making up ``negatives_share`` of the result.
        The haystack of a length is the same for every item of that length (as in NeedleBench)."""
        rng = random.Random(f"grid:{seed}")
        positives: list[NeedleItem] = []
        for length in lengths:
            for depth in depths:
                for kind, sid, needles, query, answer in self._sources(kinds, rng, hop_items, split):
                    positives.append(
                        self.build_item(
                            needles, query, context_tokens=length, depth_percent=depth, seed=seed,
                            kind=kind, answer=answer, source_id=sid,
                        )
                    )
        return positives + self._negatives(positives, negatives_share, rng, seed)

    def sample(
        self,
        n: int,
        *,
        lengths: Sequence[int] = DEFAULT_LENGTHS,
        depths: Sequence[float] = DEFAULT_DEPTHS,
        kinds: Sequence[ItemKind] = ("single", "multi", "multi_hop"),
        negatives_share: float = 0.2,
        split: Split | Literal["all"] = "eval",
        seed: int = 0,
    ) -> list[NeedleItem]:
        """``n`` items (negatives included): every multi-hop item of the split (or a seeded sample of
        them) plus the needle sets, each at a seeded random length and depth; haystacks vary by item."""
        if n <= 0:
            return []
        rng = random.Random(f"sample:{seed}")
        n_neg = round(n * negatives_share) if 0 < negatives_share < 1 else 0
        n_pos = n - n_neg
        sources: list[tuple[ItemKind, str, list[str], str, str]] = []
        if "single" in kinds:
            sources += [("single", sid, [needle], q, "") for sid, needle, q in self.single_needles()]
        if "multi" in kinds:
            sources += [("multi", f"set-{ns.index}", list(ns.needles), ns.request, "") for ns in self.needle_sets]
        if "multi_hop" in kinds:
            sources += [("multi_hop", it.id, list(it.derivations), it.question, it.answer) for it in self.multi_hop(split)]
        if not sources:
            return []
        # Needle sets are few: draw them with their share; multi-hop items without repetition first.
        picked = rng.sample(sources, n_pos) if n_pos <= len(sources) else [rng.choice(sources) for _ in range(n_pos)]
        positives: list[NeedleItem] = []
        for k, (kind, sid, needles, query, answer) in enumerate(picked):
            length = rng.choice(list(lengths))
            depth = rng.choice(list(depths))
            hay_seed = rng.randrange(1 << 30)
            positives.append(
                self.build_item(
                    needles, query, context_tokens=length, depth_percent=depth, seed=hay_seed, kind=kind,
                    answer=answer, source_id=sid, item_id=f"{sid}@{length}/{depth:g}/#{k}",
                )
            )
        negatives = self._negatives(positives, n_neg / n if n else 0.0, rng, seed, count=n_neg)
        return positives + negatives

    def _negatives(
        self, positives: list[NeedleItem], share: float, rng: random.Random, seed: int, count: int | None = None
    ) -> list[NeedleItem]:
        if not positives or share <= 0:
            return []
        if count is None:
            count = round(len(positives) * share / (1.0 - share)) if share < 1 else len(positives)
        count = min(count, len(positives))
        out: list[NeedleItem] = []
        for base in rng.sample(positives, count):
            # The question of one item over a haystack that holds none of its needles.
            hay_seed = rng.randrange(1 << 30)
            item = self.build_item(
                [], base.query, context_tokens=base.context_tokens, depth_percent=base.depth_percent,
                seed=hay_seed, kind=base.kind, negative=True, source_id=base.source_id,
                item_id=f"{base.id}/neg",
            )
            out.append(item)
        return out
