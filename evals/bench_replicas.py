"""Benchmark: scaling past one process — stateless MCP replicas sharing a Redis page cache, and
concurrent windows to an OpenAI-compatible extractor server.

1. **Replicas.** A local page server (10 distinct article pages, each answered after ``--page-delay``
   seconds and counted), a throwaway ``redis-server`` and 2 ``python -m mcp_server --transport http
   --stateless`` processes with ``ZI_ISAG_CACHE_URL`` pointing at it. N concurrent ``web_extract``
   calls over the same 10 URLs go round-robin to R = 1, then 2 of them, each call on its own client
   connection: calls/s, p50/p95 latency, and the page fetches made (they must equal the 10 distinct
   URLs in every run, however many replicas and calls). Runs alternate on the same processes, each
   with Redis flushed, ``--repeats`` times; medians. The extractor is ``bm25`` by default: on a
   2-core machine the embedding model would measure the CPU, not the scale-out.
2. **Windows.** One ``Pipeline`` call whose windows go to a local OpenAI-compatible server that answers
   every request after a fixed latency (``--latency``): windows/s sent one at a time
   (``openai_concurrency=1``), chunk by chunk (what the pipeline did before: each chunk of
   ``extract_chunk`` windows waited for the previous one), and concurrently (all chunks at once, up to
   ``openai_concurrency`` requests in flight). Same process, same windows.

    python -m evals.bench_replicas [--calls 40] [--replicas 1,2] [--repeats 3] [--extractor bm25] [--windows-only] [--out FILE]

The helpers (``RedisServer``, ``CountingPages``, ``LatencyChatServer``, ``replica_processes``) are
also what the tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from evals.bench_adapters import REPO_ROOT, _OwnedClient, server_env
from evals.bench_fetch import _WORDS, article_html
from evals.local_servers import BackgroundHTTPServer, free_port, stop_process

logger = logging.getLogger(__name__)

REDIS_SERVER = "redis-server"
REDIS_MISSING = (
    "redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server; .ci/run installs it)"
)
BENCH_QUERY = "What did the researchers measure in the tide pools in summer?"


# --- redis-server --------------------------------------------------------------------------------------
def redis_server_path() -> str | None:
    """The ``redis-server`` executable, or None when it is not installed."""
    return shutil.which(REDIS_SERVER) or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None
    )


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1 (no persistence, its own port); ``stop``/``start``
    take it down and bring it back on the same port."""

    def __init__(self, port: int | None = None) -> None:
        path = redis_server_path()
        if path is None:
            raise FileNotFoundError(REDIS_MISSING)
        self._path = path
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="zi-isag-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        cmd = [
            self._path, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", self._dir.name, "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"redis-server exited with {self._proc.returncode}: {err[-2000:]}")
            if self.ping():
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout:g} s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command, answered raw (for flushing and inspecting in tests and benchmarks)."""
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(request.encode())
            return s.recv(65536)

    def stop(self) -> None:
        if self._proc is None:
            return
        stop_process(self._proc, timeout=10)
        self._proc = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()


_BACKLOG = 256  # many clients connect at once: no resets from a full listen queue


# --- pages, counted --------------------------------------------------------------------------------------
class CountingPages(BackgroundHTTPServer):
    """``/page/0`` .. ``/page/{n-1}``: distinct article pages, each answered after ``delay`` seconds,
    every GET counted per path (``fetches``)."""

    def __init__(self, n: int = 10, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.bodies = {f"/page/{i}": article_html(i).encode() for i in range(n)}
        self.fetches: Counter[str] = Counter()
        self._lock = threading.Lock()
        super().__init__(self._handler(), name="counting-pages", backlog=_BACKLOG)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.port}{path}" for path in self.bodies]

    @property
    def total_fetches(self) -> int:
        with self._lock:
            return sum(self.fetches.values())

    def reset(self) -> None:
        with self._lock:
            self.fetches.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        pages = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                body = pages.bodies.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                with pages._lock:
                    pages.fetches[self.path] += 1
                time.sleep(pages.delay)  # the network and the far server, as one fixed wait
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


# --- an OpenAI-compatible server with a fixed latency ------------------------------------------------------
class LatencyChatServer(BackgroundHTTPServer):
    """``POST /v1/chat/completions`` answered after ``latency`` seconds with a fixed tag list, like a
    served model whose batch always takes the same time. Records requests and the most in flight."""

    ANSWER = "#Extracted Information Tag#: [[<T-1>]]"

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        super().__init__(self._handler(), name="latency-chat", backlog=_BACKLOG)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.requests = self.in_flight = self.max_in_flight = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server._lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.latency)
                    body = json.dumps(
                        {
                            "choices": [
                                {"index": 0, "message": {"role": "assistant", "content": server.ANSWER}}
                            ],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 8},
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler


# --- MCP replicas ------------------------------------------------------------------------------------------
@dataclass
class Replica:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def replica_processes(
    n: int,
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = ("--stateless",),
    timeout: float = 180,
) -> Iterator[list[Replica]]:
    """``n`` ``python -m mcp_server --transport http`` processes (stateless by default) on free ports,
    loopback fetching allowed, each logging to its own file; stopped (SIGTERM, then kill) on exit."""
    logs = tempfile.TemporaryDirectory(prefix="zi-isag-replicas-")
    replicas: list[Replica] = []
    try:
        for i in range(n):
            port = free_port()
            log_path = Path(logs.name) / f"replica-{i}.log"
            cmd = [sys.executable, "-m", "mcp_server", "--transport", "http", "--port", str(port), *args]
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    cmd, cwd=REPO_ROOT, env=server_env(env), stdout=subprocess.DEVNULL, stderr=log
                )
            replicas.append(Replica(port, proc, log_path))
        for replica in replicas:  # they start in parallel
            _wait_until_listening(replica, timeout)
        yield replicas
    finally:
        for replica in replicas:
            replica.process.terminate()
        for replica in replicas:
            stop_process(replica.process, timeout=15)
        logs.cleanup()


def _wait_until_listening(replica: Replica, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise RuntimeError(
                f"mcp_server exited with {replica.process.returncode}:\n{replica.log()[-3000:]}"
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", replica.port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"mcp_server did not listen on port {replica.port} within {timeout:g} s")


def mcp_client(url: str, *, headers: Mapping[str, str] | None = None, mode: str = "auto") -> Any:
    """An SDK ``Client`` over streamable HTTP on its own connection pool. ``mode``: ``"auto"`` (the
    2026-07-28 protocol where the server has it) or ``"legacy"`` (the initialize handshake, as most
    deployed clients still speak)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=dict(headers or {}), timeout=httpx2.Timeout(60, read=300))
    return _OwnedClient(Client(streamable_http_client(url, http_client=http), mode=mode), http)


# --- 1. replicas --------------------------------------------------------------------------------------------
async def _calls(
    replicas: list[Replica], urls: list[str], n_calls: int
) -> tuple[float, list[float], list[str]]:
    """``n_calls`` concurrent web_extract calls, call i on replica i mod R, each on its own connection."""

    async def one(i: int) -> tuple[float, str | None]:
        t0 = time.perf_counter()
        async with mcp_client(replicas[i % len(replicas)].url) as client:
            result = await client.call_tool("web_extract", {"query": f"{BENCH_QUERY} ({i})", "urls": urls})
        elapsed = time.perf_counter() - t0
        if result.is_error:
            return elapsed, result.content[0].text if result.content else "error"
        statuses = [s["status"] for s in result.structured_content["sources"]]
        return elapsed, None if statuses == ["ok"] * len(urls) else f"call {i}: sources {statuses}"

    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(n_calls)))
    wall = time.perf_counter() - t0
    return wall, [lat for lat, _ in outcomes], [err for _, err in outcomes if err]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def replica_scaleout(
    *,
    calls: int = 40,
    replica_counts: Sequence[int] = (1, 2),
    extractor: str = "bm25",
    page_delay: float = 0.2,
    repeats: int = 3,
) -> dict[str, Any]:
    """N concurrent calls over the same 10 URLs against R stateless replicas sharing one Redis.

    The replicas of the largest count are started once; a run with fewer uses the first of them, so
    every run has the same processes, and the runs alternate (rotated per repeat) so that load from
    elsewhere on the machine falls on all of them alike. Each run starts with Redis flushed."""
    runs: dict[int, list[dict[str, Any]]] = {count: [] for count in replica_counts}
    with CountingPages(10, delay=page_delay) as pages, RedisServer() as redis:
        env = {
            "ZI_ISAG_EXTRACTOR": extractor,
            "ZI_ISAG_CACHE_URL": redis.url,
            "ZI_ISAG_MCP_MAX_CALLS": str(max(4, calls)),  # measure the replicas, not the queue in front
            "ZI_ISAG_MCP_QUEUE_TIMEOUT": "300",
        }
        with replica_processes(max(replica_counts), env=env) as replicas:
            # Warm-up: the extractor, conversion workers and connections of every replica.
            asyncio.run(_calls(replicas, pages.urls, 2 * len(replicas)))
            order = list(replica_counts)
            for i in range(repeats):
                for count in order[i % len(order) :] + order[: i % len(order)]:
                    redis.command("FLUSHALL")
                    pages.reset()
                    wall, latencies, failures = asyncio.run(_calls(replicas[:count], pages.urls, calls))
                    runs[count].append(
                        {
                            "wall_s": wall,
                            "p50_s": statistics.median(latencies),
                            "p95_s": _percentile(latencies, 0.95),
                            "failures": failures,
                            "page_fetches": pages.total_fetches,
                        }
                    )
    summary: dict[str, Any] = {}
    for count, measured in runs.items():
        failures = [f for run in measured for f in run["failures"]]
        fetches = [run["page_fetches"] for run in measured]
        summary[str(count)] = {
            "replicas": count,
            "calls_per_run": calls,
            "runs": len(measured),
            "answered_ok": calls * len(measured) - len(failures),
            "failures": failures[:3],
            "calls_per_s": round(statistics.median(calls / run["wall_s"] for run in measured), 2),
            "p50_ms": round(1000 * statistics.median(run["p50_s"] for run in measured), 1),
            "p95_ms": round(1000 * statistics.median(run["p95_s"] for run in measured), 1),
            "page_fetches_per_run": fetches,
            "fetches_equal_distinct_urls": all(f == len(pages.urls) for f in fetches),
        }
    base = summary[str(replica_counts[0])]["calls_per_s"]
    for entry in summary.values():
        entry["calls_per_s_ratio"] = round(entry["calls_per_s"] / base, 3)
    return {
        "query": BENCH_QUERY,
        "extractor": extractor,
        "distinct_urls": len(pages.urls),
        "page_delay_s": page_delay,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "runs": summary,
    }


def distinct_documents(n: int) -> list[Any]:
    """``n`` short pages of different words: one window each, none a near-duplicate of another."""
    from zi_isag_tool.types import Document

    return [
        Document(f"https://example.org/{i}", " ".join(random.Random(i).sample(_WORDS, 12)).capitalize() + ".")
        for i in range(n)
    ]


# --- 2. windows -----------------------------------------------------------------------------------------------
async def _window_runs(
    server: LatencyChatServer, n_windows: int, concurrency: int, chunk: int, repeats: int
) -> dict[str, list[float]]:
    from zi_isag_tool.extractors.openai_compat import OpenAIExtractor
    from zi_isag_tool.pipeline import Pipeline, _chunks_by_document
    from zi_isag_tool.settings import Settings

    documents = distinct_documents(n_windows)
    settings = Settings(_env_file=None, extract_chunk=chunk, extract_budget=None)  # type: ignore[call-arg]

    def extractor(slots: int) -> OpenAIExtractor:
        return OpenAIExtractor(server.base_url, "bench", concurrency=slots, max_retries=0, call_budget=None)

    async def pipeline(slots: int) -> int:
        result = await Pipeline(settings, extractor=extractor(slots)).aextract_documents(
            BENCH_QUERY, documents
        )
        if result.windows != n_windows or result.failed_windows:
            raise RuntimeError(
                f"expected {n_windows} windows, none failed: {result.windows}, {result.warnings}"
            )
        return result.windows

    async def chunked(slots: int) -> int:
        # The pipeline's old schedule: one chunk after another, the windows of a chunk together.
        ext = extractor(slots)
        pipe = Pipeline(settings, extractor=ext)
        windows = pipe._tag(documents, pipe.counter)
        for part in _chunks_by_document(windows, chunk):
            await ext.aextract(BENCH_QUERY, part)
        return len(windows)

    modes = {
        "sequential": lambda: pipeline(1),
        "chunk_by_chunk": lambda: chunked(concurrency),
        "concurrent": lambda: pipeline(concurrency),
    }
    rates: dict[str, list[float]] = {name: [] for name in modes}
    rates["max_in_flight"] = []
    for i in range(repeats):
        names = list(modes)
        for name in names[i % 3 :] + names[: i % 3]:  # rotate the order between repeats
            server.reset()
            t0 = time.perf_counter()
            sent = await modes[name]()
            rates[name].append(sent / (time.perf_counter() - t0))
            if name == "concurrent":
                rates["max_in_flight"].append(float(server.max_in_flight))
    return rates


def window_throughput(
    *, windows: int = 64, latency: float = 0.1, concurrency: int = 32, chunk: int = 8, repeats: int = 3
) -> dict[str, Any]:
    """Windows/s to a server with a fixed per-request latency: sequential, chunk by chunk, concurrent."""
    with LatencyChatServer(latency) as server:
        rates = asyncio.run(_window_runs(server, windows, concurrency, chunk, repeats))
    max_in_flight = int(max(rates.pop("max_in_flight")))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "windows": windows,
        "latency_s": latency,
        "openai_concurrency": concurrency,
        "extract_chunk": chunk,
        "repeats": repeats,
        "windows_per_s": {name: round(value, 2) for name, value in medians.items()},
        "ratio_to_sequential": {
            name: round(value / medians["sequential"], 2) for name, value in medians.items()
        },
        "ideal_ratio": min(concurrency, windows),
        "max_in_flight_concurrent": max_in_flight,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evals.bench_replicas", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=40, help="concurrent web_extract calls per run")
    parser.add_argument("--replicas", default="1,2", help="replica counts to compare, comma-separated")
    parser.add_argument("--extractor", default="bm25")
    parser.add_argument(
        "--page-delay", type=float, default=0.2, help="seconds the page server waits per page"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per replica count, alternating")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument(
        "--latency", type=float, default=0.1, help="seconds the chat server waits per request"
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="openai_concurrency of the concurrent run"
    )
    parser.add_argument("--windows-only", action="store_true", help="skip the replica benchmark")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report: dict[str, Any] = {
        "windows": window_throughput(windows=args.windows, latency=args.latency, concurrency=args.concurrency)
    }
    if not args.windows_only:
        if redis_server_path() is None:
            parser.error(REDIS_MISSING)
        counts = [int(c) for c in args.replicas.split(",") if c.strip()]
        report["replicas"] = replica_scaleout(
            calls=args.calls,
            replica_counts=counts,
            extractor=args.extractor,
            page_delay=args.page_delay,
            repeats=args.repeats,
        )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
