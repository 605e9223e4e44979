"""results.json and report.md: the machine-readable results and the tables a person reads first."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["write_results", "render_report", "write_report"]

_QUALITY = [
    ("tag_recall", "recall"),
    ("tag_precision", "precision"),
    ("tag_f1", "F1"),
    ("negative_em", "neg EM"),
    ("negative_lenient", "neg lenient"),
    ("context_token_ratio", "kept/content"),
    ("output_tokens", "out tok/window"),
    ("n_items", "items"),
    ("errors", "errors"),
]
_KIND_KEYS = [("tag_recall", "recall"), ("tag_precision", "precision"), ("tag_f1", "F1"), ("context_token_ratio", "kept/content")]
_LAYOUT_KEYS = [*_KIND_KEYS[:3], ("negative_em", "negative EM"), *_KIND_KEYS[3:]]
_SAVINGS = [
    ("context_token_ratio", "kept/content"),
    ("tag_markup_overhead", "markup overhead"),
    ("prompt_content_ratio", "prompt/content"),
    ("output_tokens_tag_only", "tag-only tok"),
    ("output_tokens_info_tag", "info+tag tok"),
    ("output_tokens_verbatim", "verbatim tok"),
    ("info_tag_vs_tag_only", "info+tag ÷ tag-only"),
    ("verbatim_vs_tag_only", "verbatim ÷ tag-only"),
    ("info_tag_vs_tag_only_selected", "info+tag ÷ tag-only (selected windows)"),
    ("verbatim_vs_tag_only_selected", "verbatim ÷ tag-only (selected windows)"),
]
_CONVERT = [
    ("f1", "F1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("accuracy", "accuracy"),
    ("ms_per_page", "ms/page"),
    ("pages_per_s", "pages/s"),
    ("time_vs_trafilatura", "time ÷ trafilatura"),
    ("content_tokens", "tokens"),
    ("errors", "errors"),
]
_KEPT = [("links_dropped", "links as words"), ("links_kept", "markdown links"), ("reduction", "fewer tokens")]
_SPEED = [
    ("extract_ms_per_window", "ms/window"),
    ("extract_ms_per_window_p50", "p50"),
    ("extract_ms_per_window_p95", "p95"),
    ("window_tokens", "window tok"),
    ("load_seconds", "warm-up s"),
    ("e2e_ms", "e2e ms (median)"),
    ("errors", "errors"),
]


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_results(path: Path, results: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(results), indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}"
    return str(value)


def _table(rows: dict[str, dict[str, Any]], columns: list[tuple[str, str]], first: str = "extractor") -> list[str]:
    lines = ["| " + " | ".join([first] + [label for _, label in columns]) + " |"]
    lines.append("|" + "---|" * (len(columns) + 1))
    for name, metrics in rows.items():
        if "error" in metrics and len(metrics) <= 3:
            lines.append(f"| {name} | " + " | ".join(["–"] * len(columns)) + " |")
            continue
        lines.append("| " + " | ".join([name] + [_fmt(metrics.get(key)) for key, _ in columns]) + " |")
    return lines


def _errors(suite: dict[str, dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for name, metrics in suite.items():
        if metrics.get("error"):
            lines.append(f"- **{name}**: {metrics['error']}")
        for sample in metrics.get("error_samples") or []:
            lines.append(f"- {name}: {sample}")
        if metrics.get("e2e_error"):
            lines.append(f"- {name} (end-to-end): {metrics['e2e_error']}")
    return (["", "Errors:", ""] + lines) if lines else []


def _by_kind(suite: dict[str, dict[str, Any]]) -> list[str]:
    rows: dict[str, dict[str, Any]] = {}
    for name, metrics in suite.items():
        for kind, km in (metrics.get("by_kind") or {}).items():
            rows[f"{name} · {kind}"] = km
    if not rows:
        return []
    return ["", "By item kind (positives; negatives count only in the overall table):", ""] + _table(
        rows, _KIND_KEYS, first="extractor · kind"
    )


def _by_layout(suite: dict[str, dict[str, Any]]) -> list[str]:
    rows: dict[str, dict[str, Any]] = {}
    for name, metrics in suite.items():
        for layout, lm in (metrics.get("by_layout") or {}).items():
            rows[f"{name} · {layout}"] = lm
    if not rows:
        return []
    return [
        "",
        "By layout (pages: each paragraph a document of its own, as several pages of one call; one: all "
        "paragraphs in one document; negatives included):",
        "",
    ] + _table(rows, _LAYOUT_KEYS, first="extractor · layout")


def render_report(results: dict[str, Any]) -> str:
    lines = ["# zi-isag-tool evals", "", "```", str(results.get("command", "")), "```", ""]
    settings = results.get("settings") or {}
    if settings:
        keep = ("seed", "limit", "format", "data", "split", "lengths", "depths", "hop_items", "negatives_share", "window_tokens")
        lines.append("Settings: " + ", ".join(f"{k}={settings.get(k)}" for k in keep if k in settings))
        lines.append("")
    if results.get("elapsed_seconds") is not None:
        lines.append(f"Elapsed: {results['elapsed_seconds']:.1f} s. Token counts use {results.get('counter', 'o200k_base')}.")
        lines.append("")
    info = results.get("info") or {}
    suites = results.get("suites") or {}
    for suite, per_extractor in suites.items():
        lines.append(f"## {suite}")
        lines.append("")
        suite_info = info.get(suite) or {}
        if suite_info:
            lines.append(", ".join(f"{k}: {v}" for k, v in suite_info.items() if k not in ("plots",)))
            lines.append("")
        if suite == "speed":
            tagging = per_extractor.get("tagging") or {}
            if tagging:
                lines.append(
                    "Segment + tag + parse: "
                    f"{_fmt(tagging.get('ours_mb_s'))} MB/s; ZI-ISAG splitter baseline "
                    f"{_fmt(tagging.get('baseline_mb_s'))} MB/s; speedup {_fmt(tagging.get('speedup_vs_baseline'))}×"
                    + (f" (error: {tagging['error']})" if tagging.get("error") else "")
                )
                lines.append("")
            rows = {k: v for k, v in per_extractor.items() if k != "tagging"}
            lines += _table(rows, _SPEED)
        elif suite == "convert":
            lines += _table(per_extractor, _CONVERT, first="converter")
            lines += ["", "F1/precision/recall/accuracy: the article-extraction benchmark's metric (4-token shingles)."]
            kept = {k: v for m in per_extractor.values() for k, v in (m.get("kept_tokens") or {}).items()}
            if kept:
                lines += ["", "Passage tokens kept, one title query per page:", ""] + _table(kept, _KEPT)
        elif suite == "savings":
            lines += _table(per_extractor, _SAVINGS)
            lines += [
                "",
                "kept/content: tokens handed downstream ÷ content tokens. Output modes are per window on the "
                "same selection: tag-only answer, ZI-ISAG info+tag answer (verbatim text in place of the "
                "summary), and the selected text written out verbatim.",
            ]
        else:
            lines += _table(per_extractor, _QUALITY)
            lines += _by_layout(per_extractor)
            lines += _by_kind(per_extractor)
        for plot in suite_info.get("plots") or []:
            lines += ["", f"![{suite}]({plot})"]
        lines += _errors(per_extractor)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_report(path: Path, results: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(results), encoding="utf-8")
    return path
