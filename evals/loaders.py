"""Eval items from the three input formats: ``hotpotqa``, ``zi-isag`` and ``needlebench``.

An ``EvalItem`` is a query over one document with known gold, in one of two shapes:
- pre-segmented (``texts``): each string is one segment and ``gold_tags`` are their 1-based numbers
  (HotpotQA sentences, ZI-ISAG tagged content);
- raw (``text`` with ``gold_spans``): the project's segmenter cuts the text and the gold tags are the
  segments that overlap a gold span (NeedleBench needles).

Formats:
- ``hotpotqa``: the public distractor JSON (a list of ``{question, answer, context: [[title,
  [sentence, ...]], ...], supporting_facts: [[title, sentence_index], ...]}``; JSON lines also read).
  Each paragraph is its title as a heading segment (``"{title}\\n"``) followed by its sentences, one
  segment each; paragraphs are separated by a blank line (appended to their last sentence). The
  supporting facts are the gold tags. Negatives: for a seeded ``negatives_share`` of the final set,
  an item's question over its context with every gold paragraph dropped.
- ``zi-isag``: ZI-ISAG's files (``*.jsonl``, a file or a folder): ``{request, tagged_content,
  extractTag | extractInfoTag}`` and ChatML ``{prompt, chosen}`` records (the query and tagged content
  are read from the prompt's ``<User Query>``/``<Reference Materials>``, the gold from ``chosen`` in
  either the tag-only or the info+tag format). ``None`` answers are negatives. The same (query,
  content) seen twice (both answer formats) is one item. Records without a gold answer are skipped.
- ``needlebench``: items built by ``zi_isag_tool.datasets.needlebench`` (see there), at seeded random
  lengths/depths.

Each format reads its bundled data (``zi_isag_tool.datasets``) unless given a path: NeedleBench
English, ZI-ISAG's example files, and the first 100 HotpotQA dev items.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from zi_isag_tool.datasets import HOTPOTQA_DEV_SAMPLE, NEEDLEBENCH_DIR, UPSTREAM_EXAMPLES_DIR
from zi_isag_tool.datasets.jsonl import iter_json_lines, read_json_objects
from zi_isag_tool.datasets.needlebench import (
    DEFAULT_DEPTHS,
    DEFAULT_LENGTHS,
    ItemKind,
    NeedleBench,
    NeedleItem,
    Split,
)
from zi_isag_tool.errors import InputError

from .scoring import read_gold_tags

logger = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "Format",
    "EvalItem",
    "default_data_path",
    "load_hotpotqa",
    "load_zi_isag",
    "load_needlebench",
    "from_needle_item",
    "load_items",
    "subsample",
]

Format = Literal["hotpotqa", "zi-isag", "needlebench"]
FORMATS: tuple[str, ...] = ("hotpotqa", "zi-isag", "needlebench")
DEFAULT_NEEDLEBENCH_ITEMS = 200
"""Items generated for ``--format needlebench`` when no ``--limit`` is given."""


@dataclass(slots=True)
class EvalItem:
    id: str
    query: str
    kind: str
    texts: tuple[str, ...] | None = None
    """Pre-segmented document: one segment per string."""
    gold_tags: frozenset[int] | None = None
    """With ``texts``: 1-based numbers of the gold segments (empty: a negative item)."""
    text: str | None = None
    """Raw document, cut by the project's segmenter."""
    gold_spans: tuple[tuple[int, int], ...] | None = None
    """With ``text``: character spans of the gold content (empty: a negative item)."""
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.texts is None) == (self.text is None):
            raise ValueError("an EvalItem has either texts (pre-segmented) or text (raw), not both")

    @property
    def document_text(self) -> str:
        return self.text if self.text is not None else "".join(self.texts or ())

    @property
    def negative(self) -> bool:
        return not (self.gold_tags if self.texts is not None else self.gold_spans)


def default_data_path(fmt: str) -> Path | None:
    """Where a format's data is by default (its copy bundled with the package), if anywhere."""
    if fmt == "needlebench":
        return NEEDLEBENCH_DIR
    if fmt == "zi-isag":
        return UPSTREAM_EXAMPLES_DIR
    if fmt == "hotpotqa":
        return HOTPOTQA_DEV_SAMPLE
    return None


def subsample(items: list[EvalItem], limit: int | None, seed: int) -> list[EvalItem]:
    """A seeded sample of ``limit`` items, in their original order."""
    if limit is None or limit >= len(items):
        return items
    keep = sorted(random.Random(f"limit:{seed}").sample(range(len(items)), max(0, limit)))
    return [items[i] for i in keep]


# --- HotpotQA ------------------------------------------------------------------------------------


def _read_json_records(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        return [data]
    return read_json_objects(path, text)


def _hotpot_item(
    rec: dict[str, object], index: int, *, drop_titles: set[str] | None = None
) -> tuple[EvalItem, set[str]]:
    """The item of one record (or its negative when ``drop_titles`` is given) and its gold titles."""
    question = str(rec.get("question") or "").strip()
    context = rec.get("context")
    if not question or not isinstance(context, list) or not context:
        raise InputError(f"HotpotQA record {index}: needs 'question' and a non-empty 'context'")
    facts = rec.get("supporting_facts") or []
    gold_keys = set()
    for fact in facts if isinstance(facts, list) else []:
        if isinstance(fact, (list, tuple)) and len(fact) >= 2:
            gold_keys.add((str(fact[0]), int(fact[1])))
    gold_titles = {t for t, _ in gold_keys}
    texts: list[str] = []
    gold: set[int] = set()
    for para in context:
        if not (isinstance(para, (list, tuple)) and len(para) == 2 and isinstance(para[1], list)):
            raise InputError(f"HotpotQA record {index}: each context entry must be [title, [sentence, ...]]")
        title, sentences = str(para[0]), [str(s) for s in para[1]]
        if drop_titles is not None and title in drop_titles:
            continue
        if texts:
            texts[-1] += "\n\n"
        texts.append(f"{title}\n")
        for j, sentence in enumerate(sentences):
            if not sentence:
                continue  # an empty string is no segment
            texts.append(sentence)
            if (title, j) in gold_keys and drop_titles is None:
                gold.add(len(texts))
    rid = str(rec.get("_id") or rec.get("id") or f"hotpotqa-{index}")
    negative = drop_titles is not None
    item = EvalItem(
        id=f"{rid}/neg" if negative else rid,
        query=question,
        kind="hotpotqa",
        texts=tuple(texts),
        gold_tags=frozenset(gold),
        meta={"answer": rec.get("answer", ""), "type": rec.get("type", ""), "level": rec.get("level", "")},
    )
    return item, gold_titles


def load_hotpotqa(path: str | Path, *, negatives_share: float = 0.2, seed: int = 0) -> list[EvalItem]:
    """HotpotQA distractor items, plus negatives making up ``negatives_share`` of the result."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"HotpotQA data {path} is not a file; give --data the distractor JSON.")
    positives: list[EvalItem] = []
    titles: list[set[str]] = []
    records = _read_json_records(path)
    for i, rec in enumerate(records):
        item, gold_titles = _hotpot_item(rec, i)
        if item.negative:  # no supporting fact matched a sentence: not a usable positive
            logger.warning("HotpotQA record %s has no supporting sentence in its context; skipped", item.id)
            continue
        positives.append(item)
        titles.append(gold_titles)
    negatives: list[EvalItem] = []
    if 0 < negatives_share < 1 and positives:
        count = min(len(positives), round(len(positives) * negatives_share / (1 - negatives_share)))
        by_id = {str(r.get("_id") or r.get("id") or f"hotpotqa-{i}"): r for i, r in enumerate(records)}
        for k in sorted(random.Random(f"hotpotqa-neg:{seed}").sample(range(len(positives)), count)):
            base = positives[k]
            rec = by_id[base.id]
            try:
                neg, _ = _hotpot_item(rec, k, drop_titles=titles[k])
            except InputError:
                continue
            if neg.texts:  # a context made only of gold paragraphs leaves nothing to ask over
                negatives.append(neg)
    return positives + negatives


# --- ZI-ISAG ------------------------------------------------------------------------------------

_SEGMENT_RE = re.compile(r"<T-(\d+)>(.*?)</T-\1>", re.DOTALL)
_REF_RE = re.compile(r"<Reference Materials>(.*?)</Reference Materials>", re.DOTALL)
_QUERY_RE = re.compile(r"<User Query>(.*?)</User Query>", re.DOTALL)
_CHATML_RE = re.compile(r"<\|im_start\|>\s*\w+\s*\n?|<\|im_end\|>")


def _segments_of(tagged: str) -> list[str] | None:
    """The segment texts of ``<T-1>…</T-1><T-2>…`` in order; None when numbering is not 1..n."""
    found = [(int(m.group(1)), m.group(2)) for m in _SEGMENT_RE.finditer(tagged)]
    if not found or [n for n, _ in found] != list(range(1, len(found) + 1)):
        return None
    if any(not t for _, t in found):  # an empty segment cannot be tagged again
        return None
    return [t for _, t in found]


def _zi_isag_record(rec: dict[str, object]) -> tuple[str, str, str] | None:
    """``(query, tagged_content, gold_answer)`` of one record, or None when it carries no gold."""
    if "prompt" in rec and "chosen" in rec:
        prompt = str(rec["prompt"])
        # The instructions mention the delimiters too: the real content is the last full pair.
        refs = _REF_RE.findall(prompt)
        queries = _QUERY_RE.findall(prompt)
        refs = [r for r in refs if "<T-1>" in r]
        if not refs or not queries:
            return None
        return queries[-1].strip(), refs[-1], _CHATML_RE.sub("", str(rec["chosen"]))
    query = rec.get("request") or rec.get("query")
    tagged = rec.get("tagged_content")
    answer = rec.get("extractTag")
    if answer is None:
        info = rec.get("extractInfoTag")
        answer = "\n".join(str(a) for a in info) if isinstance(info, list) else info
    if not query or not isinstance(tagged, str) or answer is None:
        return None
    return str(query).strip(), tagged, str(answer)


def load_zi_isag(path: str | Path) -> list[EvalItem]:
    """Items of ZI-ISAG instruction/teacher files (a ``.jsonl`` file or a folder of them)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise InputError(f"No ZI-ISAG .jsonl files at {path}.")
    items: list[EvalItem] = []
    seen: dict[tuple[str, str], EvalItem] = {}
    for file in files:
        for line_no, rec in iter_json_lines(file):
            parsed = _zi_isag_record(rec) if isinstance(rec, dict) else None
            if parsed is None:
                continue
            query, tagged, answer = parsed
            texts = _segments_of(tagged)
            if texts is None:
                logger.warning("%s:%d: tagged content is not numbered <T-1>..<T-n> or has an empty segment; skipped", file, line_no)
                continue
            gold = frozenset(t for t in read_gold_tags(answer) if t <= len(texts))
            key = (query, tagged)
            if key in seen:
                if seen[key].gold_tags != gold:
                    logger.warning("%s:%d: the same item with different gold answers; kept the first", file, line_no)
                continue
            item = EvalItem(
                id=f"{file.stem}:{line_no}",
                query=query,
                kind="zi-isag",
                texts=tuple(texts),
                gold_tags=gold,
                meta={"file": file.name},
            )
            seen[key] = item
            items.append(item)
    return items


# --- NeedleBench ----------------------------------------------------------------------------------


def from_needle_item(item: NeedleItem) -> EvalItem:
    return EvalItem(
        id=item.id,
        query=item.query,
        kind=item.kind,
        text=item.text,
        gold_spans=tuple(item.needle_spans),
        meta={
            "context_tokens": item.context_tokens,
            "depth_percent": item.depth_percent,
            "source_id": item.source_id,
            "answer": item.answer,
            "negative": item.negative,
        },
    )


def load_needlebench(
    path: str | Path | None = None,
    *,
    n: int = DEFAULT_NEEDLEBENCH_ITEMS,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    depths: Sequence[float] = DEFAULT_DEPTHS,
    kinds: Sequence[ItemKind] = ("single", "multi", "multi_hop"),
    negatives_share: float = 0.2,
    split: Split | Literal["all"] = "eval",
    seed: int = 0,
    bench: NeedleBench | None = None,
) -> list[EvalItem]:
    bench = bench or NeedleBench(path)
    items = bench.sample(
        n, lengths=lengths, depths=depths, kinds=kinds, negatives_share=negatives_share, split=split, seed=seed
    )
    return [from_needle_item(it) for it in items]


def load_items(
    fmt: str,
    data: str | Path | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
    negatives_share: float = 0.2,
    lengths: Sequence[int] = DEFAULT_LENGTHS,
    depths: Sequence[float] = DEFAULT_DEPTHS,
    split: Split | Literal["all"] = "eval",
) -> list[EvalItem]:
    """Items of ``fmt`` from ``data`` (or the format's default location), subsampled to ``limit``."""
    if fmt not in FORMATS:
        raise InputError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    path = Path(data) if data is not None else default_data_path(fmt)
    if path is None:
        raise InputError(f"--format {fmt} needs --data (the path of the data file).")
    if not path.exists():
        raise InputError(f"Data path {path} does not exist.")
    if fmt == "hotpotqa":
        return subsample(load_hotpotqa(path, negatives_share=negatives_share, seed=seed), limit, seed)
    if fmt == "zi-isag":
        return subsample(load_zi_isag(path), limit, seed)
    n = limit if limit is not None else DEFAULT_NEEDLEBENCH_ITEMS
    return load_needlebench(
        path, n=n, lengths=lengths, depths=depths, negatives_share=negatives_share, split=split, seed=seed
    )
