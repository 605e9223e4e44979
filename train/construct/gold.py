"""The gold route: examples whose answer tags are known, with no teacher at all.

Needles are inserted into Paul Graham essays (NeedleBench's haystack, bundled with the package) at
seeded token lengths and depths by the builder the evals use too
(``zi_isag_tool.datasets.needlebench.NeedleBench.build_item``); the document is then split and
tagged by the pipeline's tagger into windows of ``window_tokens`` (the extractor's window size, in
the extractor's tokens when ``tokenizer`` is given). A window's gold tags are the segments that
overlap a needle (``needlebench.gold_tags``), so a completion names exactly the tags that hold a
needle.

Negatives come three ways: windows of a positive document that hold no needle; the question asked
over a haystack with no needle; the question asked over a haystack holding another item's needles.
``negative_ratio`` sets their share of what is written.

No leakage into the evals: multi-hop items are taken only from the split the evals do not score
(``split_of(id) != "eval"``, i.e. ``calib``; ``train_split`` to change it). NeedleBench's four needle
sets are scored by the needle eval whatever the split, so they are left out unless asked for
(``include_needlebench_sets``); single/multi-needle material comes instead from ZI-ISAG's synthetic
needle sets (``upstream_examples/synthetic_data_synthetic_data.jsonl``, English sets by default),
which no eval uses. Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zi_isag_tool.datasets import UPSTREAM_EXAMPLES_DIR
from zi_isag_tool.errors import InputError
from zi_isag_tool.tokens import TokenCounter, default_counter

from .records import FORMATS, INFO_NONE, Format, make_record, read_jsonl
from .teacher import BuildConfig, BuildReport, write_records

log = logging.getLogger(__name__)

DEFAULT_SYNTHETIC_NEEDLES = UPSTREAM_EXAMPLES_DIR / "synthetic_data_synthetic_data.jsonl"


@dataclass
class GoldConfig:
    n_items: int = 200
    """Positive documents to build (each gives one or more windows)."""
    lengths: Sequence[int] = (500, 1000, 2000, 4000)
    depths: Sequence[float] = (0.0, 25.0, 50.0, 75.0, 100.0)
    window_tokens: int = 1024
    negative_ratio: float = 0.3
    hop_share: float = 0.7
    """Share of positive documents built from multi-hop items (the rest from needle sets)."""
    train_split: str = "calib"
    """Multi-hop items with ``split_of(id) == train_split``; never the split the evals score."""
    needle_sets_file: str | None = str(DEFAULT_SYNTHETIC_NEEDLES)
    needle_language: str = "en"
    """``en``: only needle sets written in ASCII (the haystack is English); ``all``: every set."""
    include_needlebench_sets: bool = False
    formats: Sequence[Format] = FORMATS
    eval_fraction: float = 0.1
    seed: int = 0
    max_seq_length: int | None = None
    on_bad: str = "skip"
    data_dir: str | None = None


@dataclass(frozen=True)
class _Source:
    kind: str
    source_id: str
    needles: tuple[str, ...]
    question: str


@dataclass
class GoldReport(BuildReport):
    documents: int = 0
    windows: int = 0
    sources: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "documents": self.documents, "windows": self.windows, "sources": self.sources}


def _needle_sets(config: GoldConfig, nb: Any) -> list[_Source]:
    out: list[_Source] = []
    if config.needle_sets_file:
        path = Path(config.needle_sets_file)
        if not path.exists():
            raise InputError(f"needle sets file {path} not found (--needle-sets)")
        for line, row in read_jsonl(path, required=("needles", "request")):
            needles = tuple(str(n) for n in row["needles"])
            text = " ".join(needles) + str(row["request"])
            if config.needle_language == "en" and not text.isascii():
                continue
            out.append(_Source("multi" if len(needles) > 1 else "single", f"synthetic-{line}", needles, str(row["request"])))
    if config.include_needlebench_sets:
        log.warning("including NeedleBench's needle sets: the needle eval scores them, so that eval is no longer held out")
        out += [_Source("multi", f"set-{ns.index}", tuple(ns.needles), ns.request) for ns in nb.needle_sets]
    return out


def _hop_sources(config: GoldConfig, nb: Any) -> list[_Source]:
    if config.train_split == "eval":
        raise InputError("train_split='eval' would train on the items the evals score; use 'calib'")
    items = nb.multi_hop(config.train_split)
    return [_Source("multi_hop", it.id, tuple(it.derivations), it.question) for it in items]


def _info_answer(window: Any, tags: Sequence[int]) -> str:
    if not tags:
        return INFO_NONE
    lines = [f"{k}. {window.plain_texts[t - 1].strip()}[<T-{t}>]" for k, t in enumerate(tags, start=1)]
    return "#Extracted Information#:\n" + "\n".join(lines)


def build_gold(
    out_dir: str | Path,
    *,
    config: GoldConfig,
    tokenizer: Any | None = None,
    counter: TokenCounter | None = None,
) -> GoldReport:
    """Build, validate and write ``train.jsonl``, ``eval.jsonl`` and ``report.json`` under ``out_dir``."""
    from zi_isag_tool.datasets.needlebench import NeedleBench, gold_tags
    from zi_isag_tool.tagging import tag_document
    from zi_isag_tool.types import Document

    if counter is None:
        if tokenizer is not None:
            from zi_isag_tool.tokens import HFTokenCounter

            counter = HFTokenCounter(tokenizer)
        else:
            counter = default_counter()
    nb = NeedleBench(config.data_dir, counter=counter)
    rng = random.Random(f"gold:{config.seed}")
    hops = _hop_sources(config, nb)
    sets = _needle_sets(config, nb)
    if not hops and not sets:
        raise InputError("no needle material: no multi-hop items in the train split and no needle sets")
    n_hop = round(config.n_items * config.hop_share) if sets else config.n_items
    n_hop = min(n_hop, len(hops)) if hops else 0
    picked = rng.sample(hops, n_hop)
    if sets:
        picked += [rng.choice(sets) for _ in range(config.n_items - n_hop)]
    report = GoldReport()
    report.sources = {"multi_hop": sum(1 for s in picked if s.kind == "multi_hop"),
                      "needle_sets": sum(1 for s in picked if s.kind != "multi_hop")}
    pool = hops + sets

    positives: list[tuple[str, _Source, Any, list[int]]] = []
    negatives: list[tuple[str, _Source, Any, list[int]]] = []

    def windows_of(item: Any, source: _Source, question_source: _Source, tag: str) -> None:
        doc = Document(source=item.id, text=item.text)
        report.documents += 1
        for w in tag_document(doc, document_index=0, counter=counter, window_tokens=config.window_tokens):
            report.windows += 1
            spans = [w.span(i) for i in range(1, w.n_tags + 1)]
            gold = sorted(gold_tags(spans, item.needle_spans, item.text)) if question_source is source else []
            rid = f"{item.id}/{tag}/w{w.window_index}"
            (positives if gold else negatives).append((rid, question_source, w, gold))

    for k, src in enumerate(picked):
        length = rng.choice(list(config.lengths))
        depth = rng.choice(list(config.depths))
        hay_seed = rng.randrange(1 << 30)
        item = nb.build_item(
            list(src.needles), src.question, context_tokens=length, depth_percent=depth, seed=hay_seed,
            kind=src.kind if src.kind in ("single", "multi", "multi_hop") else "multi",  # type: ignore[arg-type]
            source_id=src.source_id, item_id=f"{src.source_id}@{length}/{depth:g}/#{k}",
        )
        windows_of(item, src, src, "pos")
        # A haystack without any needle, and one with another item's needles, for the same question.
        if rng.random() < 0.5:
            empty = nb.build_item([], src.question, context_tokens=length, depth_percent=depth,
                                  seed=rng.randrange(1 << 30), negative=True, source_id=src.source_id,
                                  item_id=f"{src.source_id}@{length}/#{k}/none")
            windows_of(empty, src, src, "none")
        else:
            other = rng.choice(pool)
            if other.source_id != src.source_id:
                foreign = nb.build_item(list(other.needles), src.question, context_tokens=length, depth_percent=depth,
                                        seed=rng.randrange(1 << 30), source_id=other.source_id,
                                        item_id=f"{other.source_id}@{length}/{depth:g}/#{k}/for-{src.source_id}")
                windows_of(foreign, other, src, "foreign")

    from .teacher import balance_negatives

    report.positives, report.negatives_available = len(positives), len(negatives)
    positives, negatives = balance_negatives(positives, negatives, config.negative_ratio, rng)
    report.negatives_kept = len(negatives)
    chosen = positives + negatives
    rng.shuffle(chosen)
    records = []
    for rid, src, w, gold in chosen:
        for fmt in config.formats:
            records.append(
                make_record(
                    record_id=f"{rid}/{fmt}", fmt=fmt, query=src.question, tagged_text=w.tagged_text,
                    n_tags=w.n_tags, tags=gold, route="gold", answer=_info_answer(w, gold),
                    # The question's own needles: the check "needles sit in exactly the named tags" needs them.
                    meta={"source_id": src.source_id, "kind": src.kind, "needles": list(src.needles)},
                )
            )
    build_cfg = BuildConfig(
        formats=config.formats, negative_ratio=config.negative_ratio, eval_fraction=config.eval_fraction,
        max_seq_length=config.max_seq_length, seed=config.seed, on_bad=config.on_bad,
    )
    # Group the eval split by source: a needle set or multi-hop item is never in both train and eval.
    write_records(records, out_dir, tokenizer=tokenizer, config=build_cfg, group_key="source_id", report=report)
    return report
