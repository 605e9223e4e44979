"""Benchmark: what the LangChain and MCP adapters cost on top of calling ``Pipeline`` directly.

For one offline query over the bundled example pages (served from a local HTTP server on 127.0.0.1):

- median latency of ``Pipeline.arun`` vs ``ZiIsagRetriever.ainvoke`` vs ``web_extract`` through an
  in-memory MCP client, all on the same loaded extractor; the ratios should stay <= 1.1;
- throughput of N concurrent ``web_extract`` calls over streamable HTTP to ``python -m mcp_server``
  (a subprocess with the embedded extractor).

    python -m evals.bench_adapters [--repeats 15] [--concurrent 50] [--extractor embedding] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .local_servers import BackgroundHTTPServer, free_port, stop_process

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
_TYPES = {".html": "text/html; charset=utf-8", ".md": "text/markdown; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


# --- local pages -------------------------------------------------------------------------------------
class PageServer(BackgroundHTTPServer):
    """The bundled example pages over HTTP on 127.0.0.1, plus ``/missing`` (404) and ``/slow``.

    ``/slow`` answers 200 and then trickles bytes for up to a minute: ``slow_started`` is set when a
    request arrives and ``slow_disconnected`` when the client hangs up (a cancelled fetch).
    """

    def __init__(self, files: list[str] | None = None) -> None:
        if files is None:
            from zi_isag_tool.cli import example_sources

            files = example_sources()
        self.files = {Path(f).name: Path(f) for f in files}
        self.slow_started = threading.Event()
        self.slow_disconnected = threading.Event()
        super().__init__(self._handler(), name="page-server")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    @property
    def urls(self) -> list[str]:
        return [self.url(name) for name in sorted(self.files)]

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        pages = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                logger.debug("page server: " + format, *args)

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                name = self.path.lstrip("/").split("?")[0]
                if name == "slow":
                    self._slow()
                elif name in pages.files:
                    body = pages.files[name].read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", _TYPES.get(pages.files[name].suffix, "text/plain"))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404, "no such page")

            def _slow(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                pages.slow_started.set()
                deadline = time.monotonic() + 60
                try:
                    while time.monotonic() < deadline:
                        self.wfile.write(b"Heat pumps keep working in the cold. " * 4)
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:  # the client closed the connection
                    pages.slow_disconnected.set()

        return Handler


# --- subprocess servers --------------------------------------------------------------------------------
def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a ``python -m mcp_server`` subprocess that may fetch from 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_ISAG_") and k != "TAVILY_API_KEY"}
    env.update(
        {
            "ZI_ISAG_ALLOW_PRIVATE_NETWORKS": "true",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    env.update(extra or {})
    return env


@contextlib.contextmanager
def http_server_process(
    port: int, *, env: Mapping[str, str] | None = None, args: list[str] | None = None, timeout: float = 120
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m mcp_server --transport http`` on 127.0.0.1:``port``; stopped (SIGTERM, then kill) on exit."""
    cmd = [sys.executable, "-m", "mcp_server", "--transport", "http", "--port", str(port), *(args or [])]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=server_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_port(port, proc, timeout)
        yield proc
    finally:
        stop_process(proc, timeout=15)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"mcp_server exited with {proc.returncode}:\n{err[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"mcp_server did not listen on port {port} within {timeout:g} s")


def http_client(url: str, token: str | None = None, headers: Mapping[str, str] | None = None) -> Any:
    """An SDK ``Client`` over streamable HTTP, with a bearer token when given."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    http = httpx2.AsyncClient(headers=all_headers, timeout=httpx2.Timeout(60, read=300))
    return _OwnedClient(Client(streamable_http_client(url, http_client=http)), http)


class _OwnedClient:
    """An MCP ``Client`` that also closes the HTTP client it was given."""

    def __init__(self, client: Any, http: Any) -> None:
        self._client = client
        self._http = http

    async def __aenter__(self) -> Any:
        await self._http.__aenter__()
        try:
            return await self._client.__aenter__()
        except BaseException:
            await self._http.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._client.__aexit__(*exc)
        finally:
            await self._http.__aexit__(None, None, None)


# --- the benchmark -------------------------------------------------------------------------------------
async def _latencies(query: str, urls: list[str], extractor: Any, repeats: int) -> dict[str, list[float]]:
    from mcp import Client

    from mcp_server.server import create_server, server_settings
    from zi_isag_tool import Pipeline, Settings, ZiIsagRetriever

    settings = server_settings(Settings(allow_private_networks=True, extractor=extractor.name))
    pipeline = Pipeline(settings, extractor=extractor)
    retriever = ZiIsagRetriever(settings=settings, extractor=extractor, sources=urls, k=None)
    server = create_server(settings, extractor=extractor)

    async with Client(server) as client:

        async def direct() -> int:
            return len((await pipeline.arun(query, urls)).passages)

        async def langchain() -> int:
            return len(await retriever.ainvoke(query))

        async def mcp() -> int:
            result = await client.call_tool("web_extract", {"query": query, "urls": urls})
            if result.is_error:
                raise RuntimeError(f"web_extract failed: {result.content}")
            return len(result.structured_content["passages"])

        runs = {"pipeline": direct, "retriever": langchain, "mcp_memory": mcp}
        times: dict[str, list[float]] = {name: [] for name in runs}
        # Warm-up (model, tokenizer, connection pools); every interface must find the same passages.
        counts = {name: await fn() for name, fn in runs.items()}
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"the interfaces disagree on the number of passages: {counts}")
        times["passages"] = [float(counts["pipeline"])]
        names = list(runs)
        for i in range(repeats):
            # Rotate the order so that no variant always runs first (caches, CPU frequency).
            for name in names[i % 3 :] + names[: i % 3]:
                t0 = time.perf_counter()
                await runs[name]()
                times[name].append(time.perf_counter() - t0)
    return times


async def _http_throughput(query: str, urls: list[str], extractor: str, concurrent: int) -> dict[str, Any]:
    port = free_port()
    with http_server_process(port, env={"ZI_ISAG_EXTRACTOR": extractor}):
        async with http_client(f"http://127.0.0.1:{port}/mcp") as client:
            await client.call_tool("web_extract", {"query": query, "urls": urls})  # warm-up
            t0 = time.perf_counter()
            results = await asyncio.gather(
                *(
                    client.call_tool("web_extract", {"query": f"{query} ({i})", "urls": urls})
                    for i in range(concurrent)
                )
            )
            wall = time.perf_counter() - t0
    failures = [
        r.content[0].text if r.is_error and r.content else f"call {i}: wrong answer"
        for i, r in enumerate(results)
        if r.is_error or r.structured_content["query"] != f"{query} ({i})"
    ]
    return {
        "calls": concurrent,
        "answered_ok": concurrent - len(failures),
        "failures": failures[:3],
        "wall_s": round(wall, 3),
        "calls_per_s": round(concurrent / wall, 2),
        "mean_latency_ms_under_load": round(1000 * wall / concurrent, 1),
    }


def adapter_overhead(
    *, repeats: int = 15, concurrent: int = 50, extractor: str = "embedding", query: str | None = None
) -> dict[str, Any]:
    """Median latencies of the same offline query through each interface, their ratios, HTTP throughput."""
    from zi_isag_tool.cli import DEMO_QUERY
    from zi_isag_tool.extractors import get_extractor
    from zi_isag_tool.settings import Settings

    query = query or DEMO_QUERY
    loaded = get_extractor(extractor, Settings(extractor=extractor))
    with PageServer() as pages:
        times = asyncio.run(_latencies(query, pages.urls, loaded, repeats))
        throughput = asyncio.run(_http_throughput(query, pages.urls, extractor, concurrent)) if concurrent else None
    passages = int(times.pop("passages")[0])
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["pipeline"]
    return {
        "query": query,
        "extractor": extractor,
        "repeats": repeats,
        "passages": passages,
        "cpu_count": os.cpu_count(),
        "median_ms": {name: round(1000 * m, 1) for name, m in medians.items()},
        "ratio_to_pipeline": {name: round(m / base, 3) for name, m in medians.items() if name != "pipeline"},
        "target_ratio": 1.1,
        "http_concurrent": throughput,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_adapters", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--concurrent", type=int, default=50, help="concurrent HTTP calls (0 to skip)")
    parser.add_argument("--extractor", default="embedding")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    report = adapter_overhead(repeats=args.repeats, concurrent=args.concurrent, extractor=args.extractor)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
