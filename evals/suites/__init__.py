"""What every suite shares: the run configuration, tagging an item into windows, running one
extractor over items (errors counted per item, never fatal) and turning runs into scores.

Metrics are computed on the extractor's own output: each item is tagged into ``TaggedWindow``s with
the extractor's tokenizer and window size (one ``document_index`` per document of the item), all
windows of the item go to ``extract`` in one call (scorer backends rank across the item's documents),
and each window-local tag ``t`` maps to the item-level tag ``offset + window.first_tag + t - 1``, where
``offset`` counts the tags of the item's earlier documents. Token accounting (content, kept, answers) uses one counter for every
extractor (o200k_base) so that ratios compare across extractors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from zi_isag_tool.datasets.needlebench import DEFAULT_DEPTHS, DEFAULT_LENGTHS, NeedleBench, gold_tags
from zi_isag_tool.extractors import Extractor
from zi_isag_tool.parser import format_tags
from zi_isag_tool.tagging import tag_document, windows_from_texts
from zi_isag_tool.tokens import TokenCounter, default_counter
from zi_isag_tool.types import Document, TaggedWindow, WindowSelection

from ..extractors import DEFAULT_EXTRACTORS, ExtractorPool, counter_of
from ..loaders import EvalItem
from ..scoring import ItemScore, aggregate, group_runs

logger = logging.getLogger(__name__)

__all__ = [
    "SUITES",
    "NAMED_ONLY_SUITES",
    "EvalConfig",
    "Context",
    "SuiteResult",
    "ItemRun",
    "RunSet",
    "tag_item",
    "run_item",
    "run_items",
    "score_run",
    "metrics_of",
    "output_tokens_of",
    "passage_texts",
]

SUITES: tuple[str, ...] = ("needle", "query", "savings", "speed")
NAMED_ONLY_SUITES: tuple[str, ...] = ("convert",)
"""Suites that need a third-party data folder (``--data``): run when named, not by ``all``."""
MAX_ERROR_SAMPLES = 5


@dataclass
class EvalConfig:
    """Everything a run depends on (written into results.json as ``settings``)."""

    suite: str = "all"
    extractors: list[str] = field(default_factory=lambda: list(DEFAULT_EXTRACTORS))
    data: str | None = None
    format: str = "needlebench"
    limit: int | None = None
    seed: int = 0
    out: str = "runs/evals"
    lengths: list[int] = field(default_factory=lambda: list(DEFAULT_LENGTHS))
    depths: list[float] = field(default_factory=lambda: list(DEFAULT_DEPTHS))
    hop_items: int = 2
    split: str = "eval"
    negatives_share: float = 0.2
    layouts: list[str] = field(default_factory=lambda: ["pages", "one"])
    """HotpotQA document layouts, the first one headline (see ``loaders.load_hotpotqa``)."""
    base_url: str | None = None
    window_tokens: int | None = None
    repeats: int = 3
    progress: bool | None = None
    """None: a bar when stderr is a terminal."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SuiteResult:
    """``metrics[extractor][key]`` plus suite-level settings/notes and the plot files written."""

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ItemRun:
    """One item through one extractor."""

    item: EvalItem
    windows: list[TaggedWindow] = field(default_factory=list)
    selections: list[WindowSelection] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    """Document span of each document tag (index ``tag - 1``)."""
    gold: frozenset[int] = frozenset()
    selected: frozenset[int] = frozenset()
    seconds: float = 0.0
    """Wall time of the ``extract`` call."""

    @property
    def text(self) -> str:
        return self.item.document_text

    @property
    def n_tags(self) -> int:
        return len(self.spans)

    def tag_text(self, tag: int) -> str:
        start, end = self.spans[tag - 1]
        return self.text[start:end]

    def window_selected(self, index: int) -> list[int]:
        """Window-local tags selected in window ``index`` (in range, unique, ascending)."""
        window, sel = self.windows[index], self.selections[index]
        return sorted({t for t in sel.tags if 1 <= t <= window.n_tags})


@dataclass
class RunSet:
    """An extractor over a list of items: the runs that worked and the errors of the others."""

    spec: str
    runs: list[ItemRun] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    load_error: str | None = None
    seconds: float = 0.0


@dataclass
class Context:
    """Shared state of one ``python -m evals`` invocation."""

    config: EvalConfig
    pool: ExtractorPool
    counter: TokenCounter = field(default_factory=default_counter)
    out_dir: Path = Path("runs/evals")
    _bench: NeedleBench | None = None
    _runs: dict[tuple[str, str], RunSet] = field(default_factory=dict)
    _windows: dict[
        tuple[str, str, int], tuple[list[TaggedWindow], list[tuple[int, int]], frozenset[int], list[int]]
    ] = field(default_factory=dict)

    @property
    def bench(self) -> NeedleBench:
        if self._bench is None:
            from ..loaders import default_data_path

            data = self.config.data if self.config.format == "needlebench" and self.config.data else None
            self._bench = NeedleBench(data or default_data_path("needlebench"), counter=self.counter)
        return self._bench

    def progress(self, iterable: Sequence[Any], desc: str) -> Any:
        disable = None if self.config.progress is None else not self.config.progress
        return tqdm(iterable, desc=desc, disable=disable, leave=False, dynamic_ncols=True)

    def cached_runs(self, key: str, spec: str, items: Sequence[EvalItem]) -> RunSet:
        """Runs of ``spec`` over ``items``, computed once per ``key`` (query and savings share them)."""
        if (key, spec) not in self._runs:
            self._runs[(key, spec)] = run_items(self, spec, items, desc=f"{key}:{spec}")
        return self._runs[(key, spec)]

    def tagged(
        self, item: EvalItem, counter: TokenCounter, window_tokens: int
    ) -> tuple[list[TaggedWindow], list[tuple[int, int]], frozenset[int], list[int]]:
        # Ids are unique within one item set, not across sets: the text's hash (and how it is cut into
        # documents) tells items apart.
        key = (f"{item.id}#{hash((item.document_text, item.documents))}", counter.name, window_tokens)
        if key not in self._windows:
            self._windows[key] = tag_item(item, counter, window_tokens)
        return self._windows[key]


def tag_item(
    item: EvalItem, counter: TokenCounter, window_tokens: int
) -> tuple[list[TaggedWindow], list[tuple[int, int]], frozenset[int], list[int]]:
    """Windows of the item (one ``document_index`` per document), the span of every item-level tag in
    ``item.document_text``, the gold tags, and each document's tag offset: window-local tag ``t`` of
    window ``w`` is item-level tag ``offsets[w.document_index] + w.first_tag + t - 1``."""
    windows: list[TaggedWindow] = []
    spans: list[tuple[int, int]] = []
    offsets: list[int] = []
    if item.texts is not None:
        char_offset = 0
        for index, (title, first, last) in enumerate(item.document_parts()):
            texts = list(item.texts[first:last])
            kinds = list(item.kinds[first:last]) if item.kinds is not None else None
            doc_windows = windows_from_texts(
                texts, document_index=index, counter=counter, window_tokens=window_tokens, kinds=kinds, title=title
            )
            offsets.append(len(spans))
            spans.extend(_spans_of(doc_windows, item.id, char_offset))
            windows.extend(doc_windows)
            char_offset += sum(map(len, texts))
        gold = frozenset(t for t in (item.gold_tags or ()) if 1 <= t <= len(spans))
    else:
        doc = Document(source=item.id, text=item.text or "")
        windows = tag_document(doc, document_index=0, counter=counter, window_tokens=window_tokens)
        offsets.append(0)
        spans = _spans_of(windows, item.id, 0)
        gold = frozenset(gold_tags(spans, item.gold_spans or (), item.document_text))
    return windows, spans, gold, offsets


def _spans_of(windows: Sequence[TaggedWindow], item_id: str, char_offset: int) -> list[tuple[int, int]]:
    """Each tag's span in the item text (one document's windows, shifted by ``char_offset``)."""
    spans: list[tuple[int, int]] = []
    for w in sorted(windows, key=lambda w: w.first_tag):
        if w.first_tag != len(spans) + 1:
            raise ValueError(f"windows of {item_id} do not number tags consecutively")
        spans.extend((s.start + char_offset, s.end + char_offset) for s in w.segments)
    return spans


def run_item(ctx: Context, extractor: Extractor, item: EvalItem) -> ItemRun:
    counter = counter_of(extractor)
    windows, spans, gold, offsets = ctx.tagged(item, counter, extractor.window_tokens)
    started = time.perf_counter()
    selections = extractor.extract(item.query, windows) if windows else []
    seconds = time.perf_counter() - started
    if len(selections) != len(windows):
        raise ValueError(f"extractor returned {len(selections)} selections for {len(windows)} windows")
    selected: set[int] = set()
    for w, sel in zip(windows, selections, strict=True):
        base = offsets[w.document_index] + w.first_tag - 1
        selected.update(base + t for t in sel.tags if 1 <= t <= w.n_tags)
    return ItemRun(item, list(windows), list(selections), spans, gold, frozenset(selected), seconds)


def run_items(ctx: Context, spec: str, items: Sequence[EvalItem], *, desc: str = "") -> RunSet:
    result = RunSet(spec)
    try:
        extractor = ctx.pool.get(spec)
    except Exception as exc:
        result.load_error = str(exc)
        logger.error("%s", exc)
        return result
    started = time.perf_counter()
    for item in ctx.progress(items, desc or spec):
        try:
            result.runs.append(run_item(ctx, extractor, item))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad item is counted and reported, never fatal
            result.errors += 1
            message = f"{item.id}: {type(exc).__name__}: {exc}"
            logger.warning("item failed under %s: %s", spec, message)
            if len(result.error_samples) < MAX_ERROR_SAMPLES:
                result.error_samples.append(message)
            if not result.runs and _fatal(exc):
                # The backend cannot run at all: every other item would fail the same way.
                result.load_error = f"extractor {spec!r} cannot run: {exc}"
                break
    result.seconds = time.perf_counter() - started
    return result


def _fatal(exc: Exception) -> bool:
    """A backend that cannot run at all (model missing, endpoint down) fails every item the same way."""
    from zi_isag_tool.errors import ExtractorError

    return isinstance(exc, ExtractorError)


def output_tokens_of(sel: WindowSelection, tags: list[int], counter: TokenCounter) -> int:
    """Tokens of the extractor's answer for a window: its own count, else its raw answer, else the
    canonical tag list (scorer backends write no answer of their own)."""
    if sel.output_tokens > 0:
        return sel.output_tokens
    if sel.raw_output:
        return counter.count(sel.raw_output)
    return counter.count(format_tags(tags))


def passage_texts(run: ItemRun) -> list[str]:
    """The text handed downstream: each run of adjacent selected tags as one passage."""
    return [run.text[run.spans[g[0] - 1][0] : run.spans[g[-1] - 1][1]] for g in group_runs(run.selected)]


def score_run(run: ItemRun, counter: TokenCounter) -> ItemScore:
    kept = sum(counter.count(t) for t in passage_texts(run))
    out_tokens = sum(
        output_tokens_of(sel, run.window_selected(i), counter) for i, sel in enumerate(run.selections)
    )
    return ItemScore(
        item_id=run.item.id,
        gold=run.gold,
        selected=run.selected,
        n_tags=run.n_tags,
        content_tokens=counter.count(run.text),
        kept_tokens=kept,
        n_windows=len(run.windows),
        output_tokens=out_tokens,
        failed_windows=sum(1 for s in run.selections if s.failed),
        kind=run.item.kind,
        meta=dict(run.item.meta),
    )


def metrics_of(
    runset: RunSet, counter: TokenCounter, *, scores: list[ItemScore] | None = None,
    extra: Callable[[list[ItemScore]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The documented metric keys for one extractor (or its load error)."""
    if runset.load_error is not None:
        return {"error": runset.load_error, "errors": 0, "n_items": 0}
    scores = scores if scores is not None else [score_run(r, counter) for r in runset.runs]
    out = aggregate(scores, errors=runset.errors)
    out["extract_seconds"] = round(sum(r.seconds for r in runset.runs), 3)
    if runset.error_samples:
        out["error_samples"] = list(runset.error_samples)
    if extra is not None:
        out.update(extra(scores))
    return out
