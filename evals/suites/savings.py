"""Savings suite: what the tag-only design saves, on the query suite's items and selections.

Per extractor, counted with o200k_base for every extractor so the numbers compare:
- ``context_token_ratio``: tokens the downstream model sees (the kept passages) / content tokens.
- ``tag_markup_overhead``: tagged window text / plain window text - 1 (the cost of ``<T-i>`` markup);
  ``prompt_content_ratio``: the whole tag-only prompt (instructions + query + tagged text) / plain text.
- Extractor output per window in three modes, for the same selection of the same windows:
  ``tag_only`` — the canonical answer ``#Extracted Information Tag#: [[<T-4>], [<T-9>~<T-12>]]``;
  ``info_tag`` — ZI-ISAG's info+tag answer, ``#Extracted Information#:\\n1. <text>[<T-4>]\\n2. ...``,
  one numbered item per run of adjacent tags, with the selected text verbatim standing in for the
  teacher's summary (a summary is usually shorter than the text, so this is an upper bound);
  ``verbatim`` — the selected text written out, what a text-rewriting compressor (LangChain's
  ``LLMChainExtractor``) has to decode. Ratios ``info_tag_vs_tag_only`` and ``verbatim_vs_tag_only``
  are of the totals over all windows; the ``*_selected`` ratios count only the windows where something
  was selected (an empty window costs a ``None`` answer in the tag modes and nothing verbatim).
"""

from __future__ import annotations

import logging
from typing import Any

from zi_isag_tool.parser import INFO_PREFIX, format_tags
from zi_isag_tool.prompts import tag_only_messages
from zi_isag_tool.tokens import TokenCounter

from ..scoring import ItemScore, group_runs
from . import Context, ItemRun, SuiteResult, metrics_of, output_tokens_of
from .query import dataset_key, query_items

logger = logging.getLogger(__name__)

__all__ = ["info_tag_answer", "verbatim_answer", "window_savings", "run"]


def _run_text(run: ItemRun, window_index: int, tags: list[int]) -> str:
    w = run.windows[window_index]
    return "".join(w.plain_texts[t - 1] for t in tags)


def info_tag_answer(run: ItemRun, window_index: int, tags: list[int]) -> str:
    """ZI-ISAG's info+tag answer with the verbatim text of each run of tags as its "information"."""
    if not tags:
        return INFO_PREFIX + " None"
    lines = []
    for n, group in enumerate(group_runs(tags), start=1):
        ref = f"<T-{group[0]}>" if len(group) == 1 else f"<T-{group[0]}>~<T-{group[-1]}>"
        text = " ".join(_run_text(run, window_index, group).split())
        lines.append(f"{n}. {text}[{ref}]")
    return INFO_PREFIX + "\n" + "\n".join(lines)


def verbatim_answer(run: ItemRun, window_index: int, tags: list[int]) -> str:
    """The selected text itself, one passage per run of adjacent tags."""
    return "\n".join(_run_text(run, window_index, g).strip() for g in group_runs(tags))


_KEYS = (
    "plain", "tagged", "prompt", "output", "tag_only", "info_tag", "verbatim", "windows",
    "sel_windows", "sel_tag_only", "sel_info_tag", "sel_verbatim",
)


def window_savings(run: ItemRun, counter: TokenCounter) -> dict[str, int]:
    """Token totals over the windows of one item run."""
    totals = dict.fromkeys(_KEYS, 0)
    for i, (w, sel) in enumerate(zip(run.windows, run.selections, strict=True)):
        tags = run.window_selected(i)
        totals["plain"] += counter.count("".join(w.plain_texts))
        totals["tagged"] += counter.count(w.tagged_text)
        totals["prompt"] += sum(counter.count(m["content"]) for m in tag_only_messages(run.item.query, w.tagged_text))
        totals["output"] += output_tokens_of(sel, tags, counter)
        totals["tag_only"] += counter.count(format_tags(tags))
        totals["info_tag"] += counter.count(info_tag_answer(run, i, tags))
        totals["verbatim"] += counter.count(verbatim_answer(run, i, tags))
        totals["windows"] += 1
        if tags:  # the same modes over the windows that selected something
            totals["sel_windows"] += 1
            totals["sel_tag_only"] += counter.count(format_tags(tags))
            totals["sel_info_tag"] += counter.count(info_tag_answer(run, i, tags))
            totals["sel_verbatim"] += counter.count(verbatim_answer(run, i, tags))
    return totals


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _saved(scores: list[ItemScore]) -> float | None:
    """Share of the content tokens the downstream model does not have to read."""
    content = sum(s.content_tokens for s in scores)
    return 1.0 - sum(s.kept_tokens for s in scores) / content if content else None


def run(ctx: Context) -> SuiteResult:
    items = query_items(ctx)
    result = SuiteResult(
        info={
            "format": ctx.config.format,
            "n_items": len(items),
            "counter": ctx.counter.name,
            "info_tag_mode": "verbatim selected text stands in for the teacher's summary (upper bound)",
        }
    )
    for spec in ctx.config.extractors:
        runset = ctx.cached_runs(dataset_key(ctx), spec, items)
        totals = dict.fromkeys(_KEYS, 0)
        for r in runset.runs:
            for k, v in window_savings(r, ctx.counter).items():
                totals[k] += v

        def extra(scores: list[ItemScore], t: dict[str, int] = totals) -> dict[str, Any]:
            n = t["windows"]
            return {
                "tag_markup_overhead": t["tagged"] / t["plain"] - 1.0 if t["plain"] else None,
                "prompt_content_ratio": _ratio(t["prompt"], t["plain"]),
                "prompt_tokens": _ratio(t["prompt"], n),
                "output_tokens_tag_only": _ratio(t["tag_only"], n),
                "output_tokens_info_tag": _ratio(t["info_tag"], n),
                "output_tokens_verbatim": _ratio(t["verbatim"], n),
                "info_tag_vs_tag_only": _ratio(t["info_tag"], t["tag_only"]),
                "verbatim_vs_tag_only": _ratio(t["verbatim"], t["tag_only"]),
                # Windows that selected nothing cost a "None" answer in the tag modes and nothing
                # verbatim; the ratios over the windows that selected something isolate the per-answer cost.
                "windows_with_selection": t["sel_windows"],
                "info_tag_vs_tag_only_selected": _ratio(t["sel_info_tag"], t["sel_tag_only"]),
                "verbatim_vs_tag_only_selected": _ratio(t["sel_verbatim"], t["sel_tag_only"]),
                "tokens_saved_share": _saved(scores),
            }

        result.metrics[spec] = metrics_of(runset, ctx.counter, extra=extra)
    return result
