"""Conversion benchmark: the isolated worker-process pool against today's threads, same process.

What it measures (HTML -> text with ``convert_page``, the fetcher's conversion):
- per page, one page at a time: the median time in this process (what a thread did when alone) and
  through the pool (pickling, a worker, the answer back); the pool must stay within 1.3x;
- pages/s with every page converting at once: the pool vs ``asyncio.to_thread`` workers, the way the
  fetcher converted before. The threaded runs happen in child processes, because lxml under
  concurrent threads can kill the process natively; a child that dies is counted as a crash;
- the same on 5 large, markup-heavy pages at once (deep nested tables, thousands of links);
- crashes over ``--crash-conversions`` (>= 200) conversions submitted to the pool at once (must be 0),
  and, for contrast, how many of ``--thread-trials`` child processes converting the 10 largest pages
  (synthetic and real) at once in threads died.

Real pages come from ``--data``: a folder in the article-extraction-benchmark layout
(``html/*.html.gz``); without it only the synthetic large pages are used.

Run: ``python -m evals.bench_convert [--data DIR] [--rounds 2] [--crash-conversions 200] [--thread-trials 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing
import random
import statistics
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from zi_isag_tool.web.convert_pool import ConversionFailed, ConversionPool, PageJob, convert_page

TARGET_RATIO = 1.3
LARGE_PAGES = 5
_WORDS = (
    "tide pool anemone crab oxygen salinity temperature rock shore sea star algae snail researchers "
    "measured summer winter species community coast wave current nutrient sunlight shell mussel"
).split()


def large_page(seed: int, target_bytes: int = 1_200_000) -> str:
    """A large, markup-heavy page: deeply nested tables, thousands of links, inline formatting,
    navigation and sidebars around an article (about ``target_bytes`` of HTML)."""
    rng = random.Random(seed)

    def words(low: int, high: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))

    def sentence() -> str:
        return words(8, 20).capitalize() + "."

    def link() -> str:
        return (
            f'<a href="https://example.org/{rng.randrange(10**6)}?ref=nav&amp;id={rng.randrange(999)}" '
            f'title="{words(2, 5)}">{words(1, 4)}</a>'
        )

    def table(depth: int) -> str:
        rows = []
        for r in range(rng.randint(2, 4)):
            cells = []
            for c in range(rng.randint(2, 4)):
                nested = depth > 0 and r == 0 and c == 0
                inner = table(depth - 1) if nested else f"<b>{words(1, 3)}</b> {link()} {rng.random():.3f}"
                cells.append(f"<td class='c{c}' style='padding:{c}px'>{inner}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        head = f"<thead><tr><th>{words(1, 2)}</th><th>{words(1, 2)}</th></tr></thead>"
        return f"<table>{head}<tbody>{''.join(rows)}</tbody></table>"

    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Large page {seed}</title>",
        "<style>" + "td{color:red}" * 200 + "</style><script>" + "var a=1;" * 500 + "</script></head><body>",
        "<header><nav><ul>" + "".join(f"<li>{link()}</li>" for _ in range(400)) + "</ul></nav></header>",
        f"<main><article><h1>Large page {seed}</h1>",
    ]
    size = sum(map(len, parts))
    section = 0
    while size < target_bytes:
        section += 1
        block = f"<h2>Section {section}</h2>"
        block += "".join(f"<p>{sentence()} {link()} <i>{sentence()}</i></p>" for _ in range(6))
        block += table(rng.randint(6, 14))
        block += "<ul>" + "".join(f"<li>{link()} {words(2, 6)}</li>" for _ in range(30)) + "</ul>"
        parts.append(block)
        size += len(block)
    parts.append(
        "</article></main><aside>" + "".join(link() for _ in range(300)) + "</aside>"
        "<footer>All rights reserved.</footer></body></html>"
    )
    return "".join(parts)


def large_jobs(n: int = LARGE_PAGES, target_bytes: int = 1_200_000) -> list[PageJob]:
    return [
        PageJob("html", large_page(i, target_bytes).encode(), "text/html; charset=utf-8", f"https://large.test/{i}")
        for i in range(n)
    ]


def article_jobs(folder: Path) -> list[PageJob]:
    """The pages of an article-extraction-benchmark folder (``html/*.html.gz``)."""
    files = sorted((folder / "html").glob("*.html.gz"))
    if not files:
        raise SystemExit(f"no html/*.html.gz under {folder}")
    return [
        PageJob("html", gzip.decompress(f.read_bytes()), "text/html; charset=utf-8", f"https://article.test/{f.name}")
        for f in files
    ]


# --- today's way: threads, in a child process so a native crash is counted, not fatal ---------------


def _threads_child(jobs: list[PageJob], rounds: int, out: Connection) -> None:
    async def all_at_once() -> tuple[float, list[float]]:
        async def one(job: PageJob) -> float:
            start = time.perf_counter()
            await asyncio.to_thread(convert_page, job)
            return time.perf_counter() - start

        start = time.perf_counter()
        latencies = await asyncio.gather(*(one(job) for job in jobs))
        return time.perf_counter() - start, list(latencies)

    convert_page(jobs[0])  # imports, first-call caches
    runs = [asyncio.run(all_at_once()) for _ in range(rounds)]
    out.send(runs)


def threads_run(jobs: list[PageJob], rounds: int) -> dict[str, Any]:
    """Every job at once on ``asyncio.to_thread``, ``rounds`` times, in a child process."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_threads_child, args=(jobs, rounds, send))
    child.start()
    send.close()
    try:
        runs = receive.recv()
    except EOFError:
        runs = None
    child.join()
    if runs is None:
        return {"crashed": True, "exitcode": child.exitcode}
    return {"crashed": False, **_throughput(runs, len(jobs))}


# --- the pool --------------------------------------------------------------------------------------


async def _pool_all_at_once(pool: ConversionPool, jobs: list[PageJob]) -> tuple[float, list[float], int]:
    crashes = 0

    async def one(job: PageJob) -> float:
        nonlocal crashes
        start = time.perf_counter()
        try:
            await pool.run(convert_page, job, timeout=300)
        except ConversionFailed as failed:
            crashes += "crashed" in failed.message
        return time.perf_counter() - start

    start = time.perf_counter()
    latencies = await asyncio.gather(*(one(job) for job in jobs))
    return time.perf_counter() - start, list(latencies), crashes


def _throughput(runs: list[tuple[float, list[float]]], n: int) -> dict[str, Any]:
    wall = statistics.median(r[0] for r in runs)
    latencies = [t for r in runs for t in r[1]]
    return {"pages_per_s": round(n / wall, 3), "wall_s": round(wall, 3), "median_latency_s": round(statistics.median(latencies), 4)}


async def _per_page(pool: ConversionPool, jobs: list[PageJob]) -> dict[str, Any]:
    """One page at a time, alternating in-process and pool so load from others hits both alike."""
    here: list[float] = []
    pooled: list[float] = []
    for job in jobs:
        start = time.perf_counter()
        convert_page(job)
        here.append(time.perf_counter() - start)
        start = time.perf_counter()
        await pool.run(convert_page, job, timeout=300)
        pooled.append(time.perf_counter() - start)
    in_process, in_pool = statistics.median(here), statistics.median(pooled)
    return {
        "in_process_median_s": round(in_process, 4),
        "pool_median_s": round(in_pool, 4),
        "ratio": round(in_pool / in_process, 3),
    }


async def _pool_benchmark(
    sets: dict[str, list[PageJob]], rounds: int, crash_conversions: int
) -> dict[str, Any]:
    pool = ConversionPool()
    try:
        warm = next(iter(sets.values()))[: pool.workers]
        await asyncio.gather(*(pool.run(convert_page, job) for job in warm))
        report: dict[str, Any] = {"workers": pool.workers}
        for name, jobs in sets.items():
            runs = []
            crashes = 0
            for _ in range(rounds):
                wall, latencies, crashed = await _pool_all_at_once(pool, jobs)
                runs.append((wall, latencies))
                crashes += crashed
            report[name] = {
                "pages": len(jobs),
                "per_page": await _per_page(pool, jobs),
                "all_at_once_pool": {**_throughput(runs, len(jobs)), "crashes": crashes},
            }
        mixed = [job for jobs in sets.values() for job in jobs]
        stream = [mixed[i % len(mixed)] for i in range(crash_conversions)]
        start = time.perf_counter()
        _, _, crashes = await _pool_all_at_once(pool, stream)
        report["crash_run"] = {
            "conversions": len(stream),
            "crashes": crashes,
            "pages_per_s": round(len(stream) / (time.perf_counter() - start), 3),
        }
        return report
    finally:
        await pool.aclose()


def run_benchmark(
    data: Path | None, rounds: int = 2, crash_conversions: int = 200, thread_trials: int = 10
) -> dict[str, Any]:
    sets: dict[str, list[PageJob]] = {}
    if data is not None:
        sets["article_pages"] = article_jobs(data)
    sets["large_pages"] = large_jobs()
    report = asyncio.run(_pool_benchmark(sets, rounds, crash_conversions))
    for name, jobs in sets.items():
        report[name]["all_at_once_threads"] = threads_run(jobs, rounds)
        threads = report[name]["all_at_once_threads"]
        if not threads["crashed"]:
            pool_rate = report[name]["all_at_once_pool"]["pages_per_s"]
            report[name]["pool_vs_threads_pages_per_s"] = round(pool_rate / threads["pages_per_s"], 3)
    # The contrast: today's threads on the largest pages at hand, each trial in its own process.
    largest = sorted((job for jobs in sets.values() for job in jobs), key=lambda j: len(j.body))[-2 * LARGE_PAGES :]
    trials = [threads_run(largest, 1) for _ in range(thread_trials)]
    report["threads_crash_trials"] = {
        "processes": thread_trials,
        "pages_at_once": len(largest),
        "crashed": sum(t["crashed"] for t in trials),
        "exit_codes": sorted({t["exitcode"] for t in trials if t["crashed"]}),
    }
    ratios = [report[name]["per_page"]["ratio"] for name in sets]
    report["passed"] = report["crash_run"]["crashes"] == 0 and all(r <= TARGET_RATIO for r in ratios)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="article-extraction-benchmark folder (html/*.html.gz)")
    parser.add_argument("--rounds", type=int, default=2, help="all-at-once runs per page set (median)")
    parser.add_argument("--crash-conversions", type=int, default=200, help="conversions submitted at once to the pool")
    parser.add_argument("--thread-trials", type=int, default=10, help="child processes converting the large pages in threads")
    args = parser.parse_args(argv)
    report = run_benchmark(args.data, args.rounds, args.crash_conversions, args.thread_trials)
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
