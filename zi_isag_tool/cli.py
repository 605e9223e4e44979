"""``zi-isag``: extract compact, exact passages for a query from the web or local files."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ZiIsagError
from .extractors import EXTRACTOR_NAMES
from .logs import setup_logging
from .types import Result

DEMO_QUERY = "How efficient are heat pumps when it is very cold outside?"


def example_sources() -> list[str]:
    """Paths of the example pages bundled with the package (used by ``zi-isag demo`` and tests)."""
    folder = resources.files("zi_isag_tool") / "examples"
    return sorted(str(Path(str(p))) for p in folder.iterdir() if p.name.endswith((".html", ".md", ".txt")))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zi-isag", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    extract = sub.add_parser("extract", help="extract passages for QUERY")
    extract.add_argument("query", help="the question the passages should answer")
    _add_common(extract)
    extract.add_argument(
        "--source", "-s", action="append", default=[], metavar="URL_OR_PATH",
        help="an http(s) URL or a local .html/.md/.txt/.pdf file (repeatable); without it, search the web",
    )
    extract.add_argument("--max-results", type=int, default=None, metavar="N", help="search results to read (1-20)")
    extract.add_argument(
        "--search", default=None, metavar="NAME[,NAME]",
        help="search backend(s): tavily, searxng, or both comma-separated, merged by rank fusion "
        "(default: $ZI_ISAG_SEARCH or tavily)",
    )
    extract.add_argument("--tavily-api-key", default=None, help="Tavily key (default: $TAVILY_API_KEY)")
    extract.add_argument(
        "--searxng-url", default=None, metavar="URL",
        help="a SearXNG instance with its JSON format on (default: $ZI_ISAG_SEARXNG_URL)",
    )

    demo = sub.add_parser("demo", help="run an offline extraction on the bundled example pages")
    demo.add_argument("query", nargs="?", default=DEMO_QUERY)
    _add_common(demo)
    return parser


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--extractor", "-e", default=None,
        help=f"backend: {', '.join(EXTRACTOR_NAMES)}; 'transformers:PATH', 'openai:MODEL' (default: $ZI_ISAG_EXTRACTOR or ranker)",
    )
    p.add_argument("--max-tokens", type=int, default=None, metavar="N", help="token budget for the passages")
    p.add_argument("--max-passages", type=int, default=None, metavar="N")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def render_text(result: Result) -> str:
    """Readable output: each passage with its source and tags, then a one-line token summary."""
    lines: list[str] = []
    for i, p in enumerate(result.passages, 1):
        tags = ",".join(str(t) for t in p.tags)
        lines.append(f"[{i}] {p.title or p.source}\n    {p.source}  tags {tags}  chars {p.start}-{p.end}")
        lines.extend("    " + line for line in p.text.splitlines())
        lines.append("")
    if result.extraction_failed:
        lines.append("No passage: extraction failed for every window (see the warnings below).\n")
    elif not result.passages:
        lines.append("No relevant passage found.\n")
    if result.passages_left_out:
        lines.append(
            f"… {result.passages_left_out} more selected passage(s) did not fit the token budget (left out or "
            "cut short); call again with a larger max_tokens to get them.\n"
        )
    for s in result.sources:
        if s.status != "ok" or s.error:
            lines.append(f"! {s.source}: {s.status}" + (f" ({s.error})" if s.error else ""))
    lines.extend(f"! {warning}" for warning in result.warnings)
    t = result.tokens
    ratio = f"{t.kept / t.content:.1%}" if t.content else "n/a"
    lines.append(
        f"tokens ({result.tokenizer}): content {t.content}, prompt {t.prompt}, output {t.output}, "
        f"kept {t.kept} ({ratio} of content) · extractor {result.extractor} · "
        f"{len(result.passages)} passages from {sum(s.status == 'ok' for s in result.sources)}/{len(result.sources)} sources"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    setup_logging(logging.INFO if args.verbose else logging.WARNING, verbose=args.verbose)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from .pipeline import Pipeline

    overrides: dict[str, Any] = {}
    if args.extractor:
        overrides["extractor"] = args.extractor
    for option in ("search", "tavily_api_key", "searxng_url"):
        if getattr(args, option, None):
            overrides[option] = getattr(args, option)
    if getattr(args, "max_results", None):
        overrides["max_results"] = args.max_results
    sources = example_sources() if args.command == "demo" else args.source
    try:
        with Pipeline(**overrides) as pipeline:
            result = pipeline.run(args.query, sources, max_tokens=args.max_tokens, max_passages=args.max_passages)
    except (ZiIsagError, ValueError) as exc:
        print(f"zi-isag: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_text(result))
    return 1 if result.extraction_failed else 0


if __name__ == "__main__":
    sys.exit(main())
