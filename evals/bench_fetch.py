"""Fetch benchmark: concurrency of the guarded fetcher and HTML-to-markdown throughput.

A local server answers every page after ``delay`` seconds. Fetching ``n_pages`` pages together should
take about one page's time, not ``n_pages`` times it: the target is ``ratio < 2`` (wall time of all
pages / time of one page). The pages are spread over 8 host names (resolved to 127.0.0.1 by the
resolver hook), so the per-host limit of 4 stays as configured; the global limit is set to
``n_pages``. Times are medians of 3 runs. Conversion throughput is MB of HTML per second through
``html_to_markdown``, one thread.

Run: ``python -m evals.bench_fetch [--pages 32] [--delay 0.2]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection

from zi_isag_tool.settings import Settings
from zi_isag_tool.web.convert import html_to_markdown
from zi_isag_tool.web.fetch import Fetcher

HOSTS = 8
_WORDS = (
    "tide pool anemone crab oxygen salinity temperature rock shore sea star algae snail researchers "
    "measured summer winter species community coast wave current nutrient sunlight shell mussel"
).split()


def article_html(seed: int, paragraphs: int = 24) -> str:
    """A realistic article page: navigation, cookie banner, sidebar and footer around the text."""
    rng = random.Random(seed)

    def sentence() -> str:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 20))]
        return " ".join(words).capitalize() + "."

    body = "".join(
        (f"<h2>Section {i // 6 + 1}</h2>" if i % 6 == 0 else "")
        + "<p>"
        + " ".join(sentence() for _ in range(rng.randint(3, 6)))
        + "</p>"
        for i in range(paragraphs)
    )
    nav = "".join(f'<li><a href="/s/{i}">Section link {i}</a></li>' for i in range(15))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Article {seed}</title>"
        "<style>body{font-family:serif}</style><script>var analytics = 1;</script></head><body>"
        "<div class='cookie-banner'>We use cookies. Accept all cookies.</div>"
        f"<header><nav><ul>{nav}</ul></nav></header>"
        f"<main><article><h1>Article number {seed}</h1>{body}</article></main>"
        "<aside>Most read: ten beaches you must visit</aside>"
        "<footer>Copyright 2026 Example Media. All rights reserved.</footer></body></html>"
    )


def _serve_forever(pages: dict[str, bytes], delay: float, port_out: Connection) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            pass

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            time.sleep(delay)
            body = pages.get(self.path, b"not found")
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        block_on_close = False
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    port_out.send(server.server_address[1])
    server.serve_forever()


def _start_server(pages: dict[str, bytes], delay: float) -> tuple[multiprocessing.Process, int]:
    """The page server runs in its own process, so its threads do not compete for this one's GIL."""
    receive, send = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=_serve_forever, args=(pages, delay, send), daemon=True)
    process.start()
    if not receive.poll(30):
        process.kill()
        raise RuntimeError("the benchmark page server did not start")
    return process, int(receive.recv())


async def _timed_fetch(settings: Settings, urls: list[str]) -> tuple[float, int]:
    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async with Fetcher(settings, resolver=resolve) as fetcher:
        start = time.perf_counter()
        pages = await fetcher.fetch_many(urls)
        elapsed = time.perf_counter() - start
    return elapsed, sum(p.status == "ok" for p in pages)


def fetch_benchmark(n_pages: int = 32, delay: float = 0.2) -> dict[str, float | int | bool]:
    """Wall time of fetching ``n_pages`` delayed pages at once vs one page; conversion MB/s."""
    htmls = {f"/page/{i}": article_html(i).encode() for i in range(n_pages)}
    process, port = _start_server(htmls, delay)
    urls = [f"http://host{i % HOSTS}.bench.test:{port}/page/{i}" for i in range(n_pages)]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        allow_private_networks=True,
        max_concurrency=max(n_pages, 1),
        per_host_concurrency=4,
        fetch_timeout=30,
    )
    try:
        asyncio.run(_timed_fetch(settings, urls[:1]))  # warm-up: imports, first conversion
        one = statistics.median(asyncio.run(_timed_fetch(settings, [urls[i]]))[0] for i in range(3))
        runs = [asyncio.run(_timed_fetch(settings, urls)) for _ in range(3)]
    finally:
        process.kill()
        process.join()
    all_time = statistics.median(t for t, _ in runs)
    ok = min(n for _, n in runs)

    corpus = [h.decode() for h in htmls.values()]
    total_bytes = sum(len(h) for h in htmls.values())
    start = time.perf_counter()
    rounds = 0
    while rounds < 3 or time.perf_counter() - start < 1.0:
        for html in corpus:
            html_to_markdown(html)
        rounds += 1
    convert_s = time.perf_counter() - start
    ratio = all_time / one
    return {
        "n_pages": n_pages,
        "delay_s": delay,
        "one_page_s": round(one, 4),
        "all_pages_s": round(all_time, 4),
        "ratio": round(ratio, 3),
        "ok_pages": ok,
        "passed": ratio < 2.0 and ok == n_pages,
        "convert_mb_per_s": round(total_bytes * rounds / convert_s / 1e6, 3),
        "mean_page_kb": round(total_bytes / max(n_pages, 1) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args(argv)
    result = fetch_benchmark(args.pages, args.delay)
    print(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
