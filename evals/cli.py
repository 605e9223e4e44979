"""``python -m evals SUITE``: how well each extractor selects the right text, and what it saves.

Examples::

    python -m evals needle --extractor bm25 embedding --out runs/needle
    python -m evals query --format hotpotqa --out runs/hotpot    # the 100 bundled dev items, plus negatives
    python -m evals query --format hotpotqa --data hotpot_dev_distractor_v1.json --limit 200 --out runs/hotpot
    python -m evals query --format needlebench --limit 200 --extractor bm25 --extractor embedding
    python -m evals savings --extractor full,bm25,embedding --limit 50
    python -m evals speed --extractor bm25,embedding
    python -m evals all --extractor transformers:smollm2 --limit 20
    python -m evals convert --data article-extraction-benchmark --extractor bm25 --out runs/convert
    python -m evals query --extractor openai:Qwen2.5-7B-Instruct --base-url http://127.0.0.1:8000/v1

Writes ``OUT/results.json`` (``{"command", "suites": {SUITE: {EXTRACTOR: {METRIC: value}}}, ...}``),
``OUT/report.md`` and the plots. Runs are seeded (``--seed``); ``--limit`` subsamples with the seed.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zi_isag_tool.datasets.needlebench import DEFAULT_DEPTHS, DEFAULT_LENGTHS
from zi_isag_tool.errors import ZiIsagError
from zi_isag_tool.logs import setup_logging

from .extractors import DEFAULT_EXTRACTORS, ExtractorPool, split_specs
from .loaders import FORMATS, LAYOUTS
from .report import write_report, write_results
from .suites import NAMED_ONLY_SUITES, SUITES, Context, EvalConfig, SuiteResult

logger = logging.getLogger("evals")

__all__ = ["main", "build_parser", "run_evals"]


def _ints(text: str) -> list[int]:
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts, got {text!r}") from exc
    if not values or min(values) < 64:
        raise argparse.ArgumentTypeError("context lengths must be at least 64 tokens")
    return values


def _depths(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated percentages, got {text!r}") from exc
    if not values or min(values) < 0 or max(values) > 100:
        raise argparse.ArgumentTypeError("depths are percentages between 0 and 100")
    return values


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("the negatives share must be in [0, 1)")
    return value


def _suites(text: str) -> str:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in (*SUITES, *NAMED_ONLY_SUITES, "all")]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"unknown suite {', '.join(bad) or text!r}; choose from {', '.join(SUITES + NAMED_ONLY_SUITES)}, all"
        )
    return "all" if "all" in names else ",".join(dict.fromkeys(names))


def _layouts(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in LAYOUTS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown layout {', '.join(bad) or text!r}; choose from {', '.join(LAYOUTS)}")
    return list(dict.fromkeys(names))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evals", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "suite", type=_suites, metavar="SUITE",
        help=f"which benchmark to run: {', '.join(SUITES)} or all (several: comma-separated, e.g. query,savings); "
        "convert (HTML -> text on an article-extraction-benchmark folder given with --data) runs only when named",
    )
    parser.add_argument(
        "--extractor", "-e", action="extend", nargs="+", metavar="SPEC",
        help="extractor(s) to compare: full, lead, bm25, embedding, smollm2, transformers:PATH, openai:MODEL; "
        "space- or comma-separated (--extractor bm25 embedding, --extractor bm25,embedding), repeatable "
        f"(default: {','.join(DEFAULT_EXTRACTORS)})",
    )
    parser.add_argument("--data", default=None, help="data file or folder (default: the format's data bundled in zi_isag_tool/datasets)")
    parser.add_argument("--format", choices=FORMATS, default="needlebench", help="query/savings input format (default: needlebench)")
    parser.add_argument("--limit", type=_positive, default=None, metavar="N", help="subsample N items with the seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/evals-SUITE)")
    parser.add_argument("--lengths", type=_ints, default=list(DEFAULT_LENGTHS), help="needlebench context lengths in tokens, comma-separated")
    parser.add_argument("--depths", type=_depths, default=list(DEFAULT_DEPTHS), help="needle depths in percent, comma-separated")
    parser.add_argument("--hop-items", type=int, default=2, metavar="N", help="multi-hop items per needle grid cell (default 2)")
    parser.add_argument(
        "--split", choices=("eval", "calib", "all"), default="eval",
        help="needlebench multi-hop items: held-out eval share (default), the calibration share, or all",
    )
    parser.add_argument("--negatives", type=_share, default=0.2, metavar="SHARE", help="share of no-answer items (hotpotqa, needlebench; default 0.2)")
    parser.add_argument(
        "--layout", type=_layouts, default=["pages", "one"], metavar="LAYOUTS",
        help="hotpotqa: present each item's paragraphs as separate pages (pages), as one document (one), "
        "or both, comma-separated; the first gives the headline metrics (default: pages,one)",
    )
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint for openai:MODEL extractors")
    parser.add_argument("--window-tokens", type=int, default=None, help="override every extractor's window size")
    parser.add_argument("--repeats", type=_positive, default=3, help="speed suite repetitions (default 3)")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show progress bars")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    return parser


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        suite=args.suite,
        extractors=split_specs(args.extractor) or list(DEFAULT_EXTRACTORS),
        data=args.data,
        format=args.format,
        limit=args.limit,
        seed=args.seed,
        out=args.out or f"runs/evals-{args.suite.replace(',', '-')}",
        lengths=args.lengths,
        depths=args.depths,
        hop_items=args.hop_items,
        split=args.split,
        negatives_share=args.negatives,
        layouts=args.layout,
        base_url=args.base_url,
        window_tokens=args.window_tokens,
        repeats=args.repeats,
        progress=args.progress,
    )


def _suite_runner(name: str) -> Callable[[Context], SuiteResult]:
    from .suites import convert, needle, query, savings, speed

    runners = {"needle": needle.run, "query": query.run, "savings": savings.run, "speed": speed.run}
    return {**runners, "convert": convert.run}[name]


def run_evals(config: EvalConfig, command: str) -> dict[str, Any]:
    """Run the configured suite(s); write results.json, report.md and plots; return the results."""
    out_dir = Path(config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        config=config,
        pool=ExtractorPool(base_url=config.base_url, window_tokens=config.window_tokens),
        out_dir=out_dir,
    )
    names = list(SUITES) if config.suite == "all" else config.suite.split(",")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": command,
        "suites": {},
        "info": {},
        "settings": config.to_dict(),
        "counter": ctx.counter.name,
    }
    for name in names:
        logger.info("running suite %s", name)
        suite_started = time.perf_counter()
        try:
            outcome = _suite_runner(name)(ctx)
        except ZiIsagError as exc:  # bad data path/format: the suite cannot start
            logger.error("suite %s: %s", name, exc)
            results["suites"][name] = {}
            results["info"][name] = {"error": str(exc)}
            continue
        results["suites"][name] = outcome.metrics
        results["info"][name] = {**outcome.info, "seconds": round(time.perf_counter() - suite_started, 2)}
        if outcome.plots:
            results["info"][name]["plots"] = outcome.plots
    results["elapsed_seconds"] = time.perf_counter() - started
    write_results(out_dir / "results.json", results)
    write_report(out_dir / "report.md", results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    setup_logging(
        logging.INFO if args.verbose else logging.WARNING,
        verbose=args.verbose,
        progress=args.progress,
        fmt="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = config_from_args(args)
    command = "python -m evals " + shlex.join(argv)
    try:
        results = run_evals(config, command)
    except ZiIsagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(config.out)
    print(f"wrote {out / 'results.json'} and {out / 'report.md'}")
    failed = [s for s, info in results["info"].items() if isinstance(info, dict) and info.get("error")]
    return 1 if failed and len(failed) == len(results["info"]) else 0
