"""Check the speed baseline against ZI-ISAG's own splitter: same output, same cost.

``evals.baseline_splitter`` re-implements upstream's ``TextSplitterFSM`` + ``get_tag_content``
(heguangxin/ZI-ISAG, ``data/utils/util.py``), and the speed suite's ratio is only as honest as that
re-implementation. Upstream's code is not part of this project; given a local copy of that file, this
module loads just those two definitions (the file's other imports, such as ``openai``, are skipped
unless they are standard library) and runs them side by side with the re-implementation:

    python -m evals.baseline_fidelity path/to/ZI-ISAG/data/utils/util.py [--repeats 7] [--limit N]

It prints how many documents come out identical (segments and tagged text) and the time ratio
``upstream / re-implementation`` (median of interleaved rounds): near 1.0 means the speed suite's
``speedup_vs_baseline`` is also a speed-up over upstream's code.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals.baseline_splitter import baseline_split_and_tag
from evals.bench_tagging import DEFAULT_HAYSTACK, load_haystack
from zi_isag_tool.errors import InputError

__all__ = ["load_upstream", "fidelity", "UPSTREAM_NAMES"]

UPSTREAM_NAMES = ("TextSplitterFSM", "get_tag_content")


def load_upstream(path: str | Path) -> dict[str, Any]:
    """``{name: object}`` for ``UPSTREAM_NAMES``, defined from the file at ``path`` with only its
    standard-library imports run (a full import would need upstream's whole environment)."""
    source = Path(path).read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))

    def stdlib_only(node: ast.stmt) -> bool:
        if isinstance(node, ast.Import):
            return all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names)
        if isinstance(node, ast.ImportFrom):
            return node.level == 0 and (node.module or "").split(".")[0] in sys.stdlib_module_names
        return False

    kept = [
        node
        for node in tree.body
        if stdlib_only(node)
        or (isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in UPSTREAM_NAMES)
    ]
    namespace: dict[str, Any] = {"__name__": "zi_isag_upstream_util"}
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    missing = [name for name in UPSTREAM_NAMES if name not in namespace]
    if missing:
        raise InputError(f"{path} does not define {', '.join(missing)}: is it ZI-ISAG's data/utils/util.py?")
    return {name: namespace[name] for name in UPSTREAM_NAMES}


def fidelity(texts: Sequence[str], upstream: dict[str, Any], *, repeats: int = 7) -> dict[str, Any]:
    """Output identity per document and the interleaved time ratio, upstream over re-implementation."""
    fsm_class, tag_content = upstream["TextSplitterFSM"], upstream["get_tag_content"]

    def run_upstream(text: str) -> tuple[list[str], str]:
        fsm = fsm_class()
        fsm.process(text)
        segments = fsm.get_segments()
        return segments, tag_content(segments)

    identical = sum(run_upstream(t) == baseline_split_and_tag(t) for t in texts)

    def timed(split: Callable[[str], object]) -> float:
        gc.collect()
        started = time.perf_counter()
        for text in texts:
            split(text)
        return time.perf_counter() - started

    up, ours = [], []
    for _ in range(max(1, repeats)):
        up.append(timed(run_upstream))
        ours.append(timed(baseline_split_and_tag))
    return {
        "documents": len(texts),
        "identical_output": identical,
        "upstream_ms": round(statistics.median(up) * 1e3, 1),
        "reimplementation_ms": round(statistics.median(ours) * 1e3, 1),
        "upstream_over_reimplementation": round(
            statistics.median(u / o for u, o in zip(up, ours, strict=True)), 3
        ),
        "rounds": max(1, repeats),
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("upstream", type=Path, help="a local copy of ZI-ISAG's data/utils/util.py")
    ap.add_argument("--data", type=Path, default=DEFAULT_HAYSTACK, help="JSONL with a 'text' field")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument(
        "--repeats", type=int, default=7, help="interleaved rounds (the median ratio is reported)"
    )
    args = ap.parse_args(argv)
    result = fidelity(
        load_haystack(args.data, args.limit), load_upstream(args.upstream), repeats=args.repeats
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
