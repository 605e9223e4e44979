"""The ``openai`` extractor's bounds against a real, misbehaving OpenAI-compatible server on 127.0.0.1.

The server drip-feeds an answer, hangs, sends 10 MB, answers ``""``, reports absurd ``usage``, or
asks for an hour's ``Retry-After``. Each window ends within the bound configured for it, the failure
is recorded on that window with the bound that fired, and the event loop stays responsive: a
watchdog task measures its longest stall (no wall-clock limit on the whole run).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from zi_isag_tool.extractors.openai_compat import OpenAIExtractor
from zi_isag_tool.pipeline import Pipeline
from zi_isag_tool.settings import Settings
from zi_isag_tool.tokens import default_counter
from zi_isag_tool.types import Document, Segment, TaggedWindow

MODEL = "zi-isag-test"
GOOD = "#Extracted Information Tag#: [[<T-1>], [<T-3>]]"
STALL_BOUND_S = 1.0
"""The loop may pause for scheduling on a loaded machine, never for seconds of parsing."""


class _Misbehaving(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    calls: dict[str, int] = defaultdict(int)
    lock = threading.Lock()
    stop = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        match = re.search(r"SCENARIO=(\w+)", body["messages"][0]["content"])
        scenario = match.group(1) if match else "good"
        with self.lock:
            self.calls[scenario] += 1
            attempt = self.calls[scenario]
        try:
            getattr(self, f"_{scenario}")(attempt)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _headers(self, length: int | None, status: int = 200, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if length is not None:
            self.send_header("Content-Length", str(length))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def _answer(self, content: str, usage: dict[str, Any] | None = None) -> None:
        payload: dict[str, Any] = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
        if usage is not None:
            payload["usage"] = usage
        data = json.dumps(payload).encode()
        self._headers(len(data))
        self.wfile.write(data)

    def _good(self, attempt: int) -> None:
        self._answer(GOOD, {"prompt_tokens": 300, "completion_tokens": 12})

    def _drip(self, attempt: int) -> None:
        # A valid answer, one byte every 50 ms: every read is quick, the whole never arrives in time.
        data = json.dumps({"choices": [{"message": {"content": GOOD + " " * 4000}}]}).encode()
        self._headers(len(data))
        for byte in data:
            if self.stop.is_set():
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.05)

    def _hang(self, attempt: int) -> None:
        self.stop.wait(60)  # reads the request, never answers

    def _huge(self, attempt: int) -> None:
        filler = "x" * (10 << 20)
        data = json.dumps({"choices": [{"message": {"content": GOOD + filler}}]}).encode()
        self._headers(len(data))
        self.wfile.write(data)

    def _empty(self, attempt: int) -> None:
        self._answer("", {"prompt_tokens": 300, "completion_tokens": 0})

    def _absurd(self, attempt: int) -> None:
        self._answer(GOOD, {"prompt_tokens": 10**30, "completion_tokens": -7, "total_tokens": 1})

    def _retryafter(self, attempt: int) -> None:
        if attempt == 1:
            self._headers(2, 429, {"Retry-After": "3600"})
            self.wfile.write(b"{}")
        else:
            self._good(attempt)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        _Misbehaving.stop.set()
        httpd.shutdown()
        httpd.server_close()


def window(scenario: str, index: int = 0) -> TaggedWindow:
    texts = [f"SCENARIO={scenario} sentence {i}. " for i in range(1, 5)]
    segments, pos = [], 0
    for text in texts:
        segments.append(Segment(pos, pos + len(text)))
        pos += len(text)
    tagged = "".join(f"<T-{i}>{t}</T-{i}>" for i, t in enumerate(texts, 1))
    return TaggedWindow(0, index, 1, tuple(segments), tagged, tuple(texts))


class Watchdog:
    """Measures the event loop's longest stall: how late a 10 ms sleep wakes up."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.longest = max(self.longest, loop.time() - before - 0.01)

    async def __aenter__(self) -> Watchdog:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def make(url: str, **kw: Any) -> OpenAIExtractor:
    options: dict[str, Any] = {"timeout": 1.0, "max_retries": 0, "concurrency": 8, "max_new_tokens": 32}
    options.update(kw)
    return OpenAIExtractor(url, MODEL, None, **options)


async def test_each_misbehaviour_ends_within_its_bound_per_window(endpoint: str) -> None:
    ext = make(endpoint, max_response_bytes=65_536, max_retry_after=0.2, max_retries=1, call_budget=30)
    ext.backoff_base = 0.01
    scenarios = ["good", "drip", "huge", "empty", "absurd", "retryafter"]
    async with Watchdog() as watchdog:
        good, drip, huge, empty, absurd, retry_after = await ext.aextract(
            "q", [window(s, i) for i, s in enumerate(scenarios)]
        )
    assert good.tags == [1, 3] and (good.prompt_tokens, good.output_tokens) == (300, 12)
    # The per-request deadline fired (every read was quick: httpx's read timeout never would).
    assert drip.failed and drip.error == "timed out: no complete answer within 1 s (after 2 attempts)"
    # The byte cap fired, before 10 MB were read or parsed; not retried (it would only repeat).
    assert huge.failed and huge.error == "the answer is longer than the 65536-byte limit; not read"
    assert _Misbehaving.calls["huge"] == 1
    # "" is a failed window, not an explicit "nothing relevant".
    assert empty.failed and empty.error == "empty answer" and empty.tags == []
    # Absurd usage is ignored: tokens counted locally.
    counter = default_counter()
    assert absurd.tags == [1, 3] and not absurd.failed
    assert absurd.output_tokens == counter.count(GOOD) and 0 < absurd.prompt_tokens < 10_000
    # Retry-After: 3600 was capped at 0.2 s: the retry happened and the window succeeded.
    assert retry_after.tags == [1, 3] and _Misbehaving.calls["retryafter"] == 2
    assert watchdog.longest < STALL_BOUND_S, watchdog.longest


async def test_call_budget_ends_a_hanging_endpoint(endpoint: str) -> None:
    """Per-request deadline far away, retries allowed: the call's budget is what ends it."""
    ext = make(endpoint, timeout=30.0, max_retries=3, call_budget=1.0, concurrency=2)
    async with Watchdog() as watchdog:
        good, *hung = await ext.aextract("q", [window("good")] + [window("hang", i) for i in range(1, 5)])
    assert good.tags == [1, 3]
    # Two were waiting for an answer when the budget ran out, two were never sent.
    assert sorted(sel.error or "" for sel in hung) == [
        "the extraction budget (1 s) was spent",
        "the extraction budget (1 s) was spent",
        "the extraction budget (1 s) was spent while waiting for the answer",
        "the extraction budget (1 s) was spent while waiting for the answer",
    ]
    assert watchdog.longest < STALL_BOUND_S


def test_sync_extract_has_the_same_bounds(endpoint: str) -> None:
    ext = make(endpoint, timeout=0.5)
    drip, good = ext.extract("q", [window("drip"), window("good", 1)])
    assert drip.error == "timed out: no complete answer within 0.5 s" and good.tags == [1, 3]


async def test_pipeline_budget_spans_every_chunk_of_a_call(endpoint: str) -> None:
    """Windows are sent a chunk at a time; the budget is for the whole call, not per chunk."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        extract_budget=1.5,
        extract_chunk=1,
        window_tokens=64,
        max_segment_chars=64,
    )
    ext = make(endpoint, timeout=30.0, max_retries=0, call_budget=None)
    text = " ".join(f"SCENARIO=hang sentence number {i} about heat pumps." for i in range(40))
    before = _Misbehaving.calls["hang"]
    result = await Pipeline(settings, extractor=ext).aextract_documents("q", [Document("doc", text)])
    assert result.windows > 2 and result.failed_windows == result.windows and result.extraction_failed
    assert _Misbehaving.calls["hang"] - before < result.windows  # later chunks were never sent
    assert any("extraction budget (1.5 s) was spent" in w for w in result.warnings)
    assert result.to_dict()["failed_windows"] == result.windows
