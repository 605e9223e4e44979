"""The ``openai`` extractor against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server (http.server in a thread) answers ``/v1/chat/completions`` by the scenario written into
each window's tagged text: good answers, prose around the list, garbage, out-of-range ids, 429 then
success, 500s, 401, 400, slow answers, missing content.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from zi_isag_tool.errors import ConfigError, ExtractorError
from zi_isag_tool.extractors.base import Extractor
from zi_isag_tool.extractors.openai_compat import OpenAIExtractor
from zi_isag_tool.settings import Settings
from zi_isag_tool.tokens import default_counter
from zi_isag_tool.types import Segment, TaggedWindow

KEY = "sk-test-SECRET-0123456789"
MODEL = "zi-isag-test"

ANSWERS = {
    "good": "#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-4>]]",
    "prose": "Sure! The relevant tags are:\n```\n#Extracted Information Tag#: [[<T-2>]]\n```\nHope this helps.",
    "garbage": "I like turtles.",
    "outofrange": "#Extracted Information Tag#: [[<T-2>], [<T-9>~<T-12>], [<T-0>]]",
    "none": "#Extracted Information Tag#: None",
}


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, list[tuple[float, dict[str, str], dict[str, Any]]]] = defaultdict(list)
        self.in_flight = 0
        self.max_in_flight = 0

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.in_flight = self.max_in_flight = 0


def _make_handler(rec: _Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": "not found"}})
                return
            content = body["messages"][0]["content"]
            m = re.search(r"SCENARIO=(\w+)", content)
            scenario = m.group(1) if m else "unknown"
            with rec.lock:
                rec.requests[scenario].append((time.monotonic(), dict(self.headers), body))
                n = len(rec.requests[scenario])
                rec.in_flight += 1
                rec.max_in_flight = max(rec.max_in_flight, rec.in_flight)
            try:
                self._answer(scenario, n, content)
            finally:
                with rec.lock:
                    rec.in_flight -= 1

        def _answer(self, scenario: str, n: int, content: str) -> None:
            if scenario == "e401" or self.headers.get("Authorization") != f"Bearer {KEY}":
                # Some servers echo the key they refused: the client must not pass it on.
                sent = self.headers.get("Authorization", "")
                self._send(401, {"error": {"message": f"Incorrect API key provided: {sent}"}})
                return
            if scenario == "e400":
                self._send(400, {"error": {"message": f"context too long for key {KEY}"}})
                return
            if scenario == "e500":
                self._send(500, {"error": {"message": "boom"}})
                return
            if scenario == "r429" and n == 1:
                self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
                return
            if scenario == "slow":
                time.sleep(0.8)
            if scenario == "sleepy":
                time.sleep(0.15)
            if scenario == "nocontent":
                self._send(
                    200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]}
                )
                return
            answer = ANSWERS.get(scenario, ANSWERS["good"])
            payload: dict[str, Any] = {
                "id": "cmpl-1",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                ],
            }
            if scenario in ("good", "r429"):
                payload["usage"] = {"prompt_tokens": 321, "completion_tokens": 17, "total_tokens": 338}
            self._send(200, payload)

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, _Recorder]]:
    rec = _Recorder()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(rec))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", rec
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def endpoint(server: tuple[str, _Recorder]) -> tuple[str, _Recorder]:
    server[1].reset()
    return server


def window(scenario: str, n_tags: int = 4, index: int = 0) -> TaggedWindow:
    texts = [f"SCENARIO={scenario} sentence {i}. " for i in range(1, n_tags + 1)]
    segments, pos = [], 0
    for t in texts:
        segments.append(Segment(pos, pos + len(t)))
        pos += len(t)
    tagged = "".join(f"<T-{i}>{t}</T-{i}>" for i, t in enumerate(texts, 1))
    return TaggedWindow(0, index, 1, tuple(segments), tagged, tuple(texts))


def make(url: str, **kw: Any) -> OpenAIExtractor:
    opts: dict[str, Any] = {"timeout": 5.0, "max_retries": 2, "concurrency": 4, "max_new_tokens": 32}
    opts.update(kw)
    ext = OpenAIExtractor(url, MODEL, KEY, **opts)
    ext.backoff_base = 0.01  # keep retries quick; Retry-After still applies
    return ext


SCRIPTED = ["good", "prose", "garbage", "outofrange", "none", "nocontent"]


def _check_scripted(sels: list[Any]) -> None:
    good, prose, garbage, oor, none, nocontent = sels
    assert good.tags == [1, 3, 4] and not good.failed
    assert (good.prompt_tokens, good.output_tokens) == (321, 17)  # from the response's usage
    assert good.raw_output == ANSWERS["good"]
    assert prose.tags == [2] and not prose.failed
    counter = default_counter()
    assert prose.output_tokens == counter.count(ANSWERS["prose"])  # no usage: counted locally
    assert prose.prompt_tokens > 300
    assert garbage.failed and garbage.tags == [] and "unparseable" in (garbage.error or "")
    assert oor.tags == [2] and oor.dropped_out_of_range == 5 and not oor.failed
    assert none.tags == [] and not none.failed
    assert nocontent.failed and "no message content" in (nocontent.error or "")


def test_sync_scripted_answers(endpoint: tuple[str, _Recorder]) -> None:
    url, rec = endpoint
    ext = make(url)
    assert isinstance(ext, Extractor)
    sels = ext.extract("Which tags?", [window(s, index=i) for i, s in enumerate(SCRIPTED)])
    _check_scripted(sels)
    _, headers, body = rec.requests["good"][0]
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert body["model"] == MODEL and body["temperature"] == 0 and body["max_tokens"] == 32
    assert body["stop"] == ["]]"]
    content = body["messages"][0]["content"]
    assert body["messages"][0]["role"] == "user"
    assert "#User Query#:<User Query>Which tags?</User Query>" in content
    assert window("good").tagged_text in content


async def test_async_scripted_answers(endpoint: tuple[str, _Recorder]) -> None:
    url, _ = endpoint
    sels = await make(url).aextract("Which tags?", [window(s, index=i) for i, s in enumerate(SCRIPTED)])
    _check_scripted(sels)


async def test_retry_after_honoured(endpoint: tuple[str, _Recorder]) -> None:
    url, rec = endpoint
    [sel] = await make(url).aextract("q", [window("r429")])
    assert sel.tags == [1, 3, 4] and not sel.failed
    times = [t for t, _, _ in rec.requests["r429"]]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.9  # waited for Retry-After: 1, not the 10 ms backoff


def test_retry_after_honoured_sync(endpoint: tuple[str, _Recorder]) -> None:
    url, rec = endpoint
    [sel] = make(url).extract("q", [window("r429")])
    assert sel.tags == [1, 3, 4]
    times = [t for t, _, _ in rec.requests["r429"]]
    assert len(times) == 2 and times[1] - times[0] >= 0.9


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_500_bounded_retries_then_failed_window(endpoint: tuple[str, _Recorder], mode: str) -> None:
    url, rec = endpoint
    ext = make(url, max_retries=2)
    windows = [window("e500"), window("good", index=1)]
    sels = ext.extract("q", windows) if mode == "sync" else await ext.aextract("q", windows)
    bad, good = sels
    assert (
        bad.failed
        and bad.tags == []
        and "HTTP 500" in (bad.error or "")
        and "3 attempts" in (bad.error or "")
    )
    assert good.tags == [1, 3, 4]
    assert len(rec.requests["e500"]) == 3  # 1 + max_retries


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_401_not_retried_clear_error_key_not_leaked(
    endpoint: tuple[str, _Recorder], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, rec = endpoint
    caplog.set_level(logging.DEBUG)
    ext = make(url, concurrency=1)
    windows = [window("e401"), window("e401", index=1)]
    with pytest.raises(ExtractorError) as info:
        if mode == "sync":
            ext.extract("q", windows)
        else:
            await ext.aextract("q", windows)
    message = str(info.value)
    assert "401" in message and "API key" in message
    assert KEY not in message and KEY not in repr(ext) and KEY not in caplog.text
    assert len(rec.requests["e401"]) == 1  # no retry, and the second window was not sent


async def test_wrong_key_on_some_windows_only_fails_them(endpoint: tuple[str, _Recorder]) -> None:
    url, rec = endpoint
    # One refused window among good ones: the good ones already done stay done.
    ext = make(url, concurrency=1)
    sels = await ext.aextract("q", [window("good"), window("e401", index=1)])
    assert sels[0].tags == [1, 3, 4]
    assert sels[1].failed and "401" in (sels[1].error or "")


def test_400_not_retried_and_redacted(
    endpoint: tuple[str, _Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    url, rec = endpoint
    caplog.set_level(logging.DEBUG)
    [sel] = make(url).extract("q", [window("e400")])
    assert sel.failed and "HTTP 400" in (sel.error or "") and "context too long" in (sel.error or "")
    assert KEY not in (sel.error or "") and KEY not in caplog.text
    assert len(rec.requests["e400"]) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_slow_response_times_out(endpoint: tuple[str, _Recorder], mode: str) -> None:
    url, rec = endpoint
    ext = make(url, timeout=0.3, max_retries=1)
    windows = [window("slow"), window("good", index=1)]
    slow, good = ext.extract("q", windows) if mode == "sync" else await ext.aextract("q", windows)
    assert slow.failed and "timed out" in (slow.error or "") and "2 attempts" in (slow.error or "")
    assert good.tags == [1, 3, 4]
    assert len(rec.requests["slow"]) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_concurrency_bounded(endpoint: tuple[str, _Recorder], mode: str) -> None:
    url, rec = endpoint
    ext = make(url, concurrency=3)
    windows = [window("sleepy", index=i) for i in range(9)]
    sels = ext.extract("q", windows) if mode == "sync" else await ext.aextract("q", windows)
    assert [s.tags for s in sels] == [[1, 3, 4]] * 9
    assert 2 <= rec.max_in_flight <= 3


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_unreachable_endpoint_raises(mode: str) -> None:
    ext = make(f"http://127.0.0.1:{_closed_port()}/v1", timeout=1.0)
    windows = [window("good"), window("good", index=1)]
    with pytest.raises(ExtractorError, match="could not reach") as info:
        if mode == "sync":
            ext.extract("q", windows)
        else:
            await ext.aextract("q", windows)
    assert KEY not in str(info.value)


async def test_sync_extract_inside_running_loop(endpoint: tuple[str, _Recorder]) -> None:
    url, _ = endpoint
    # No asyncio.run inside: the sync path works even when called from a coroutine.
    assert make(url).extract("q", [window("good")])[0].tags == [1, 3, 4]


def test_custom_token_counter_used_without_usage(endpoint: tuple[str, _Recorder]) -> None:
    url, _ = endpoint

    class WordCounter:
        name = "words"

        def count(self, text: str) -> int:
            return len(text.split())

        def count_many(self, texts: list[str]) -> list[int]:
            return [self.count(t) for t in texts]

    ext = make(url, token_counter=WordCounter())
    [sel] = ext.extract("q", [window("prose")])
    assert sel.output_tokens == len(ANSWERS["prose"].split())
    assert ext.token_counter is not None and ext.token_counter.name == "words"
    assert ext.window_tokens == 2048


def test_empty_windows() -> None:
    assert make("http://127.0.0.1:9/v1").extract("q", []) == []


def test_from_settings_and_repr() -> None:
    s = Settings(
        openai_base_url="http://127.0.0.1:1234/v1/",
        openai_model="served",
        openai_api_key=KEY,
        openai_timeout=7,
        openai_max_retries=1,
        openai_concurrency=2,
        window_tokens=1024,
    )
    ext = OpenAIExtractor.from_settings(s)
    assert ext.url == "http://127.0.0.1:1234/v1/chat/completions"
    assert (ext.model, ext.timeout, ext.max_retries, ext.concurrency, ext.window_tokens) == (
        "served",
        7,
        1,
        2,
        1024,
    )
    assert OpenAIExtractor.from_settings(s, model="other").model == "other"
    assert KEY not in repr(ext) and KEY not in str(vars(ext))
    with pytest.raises(ConfigError):
        OpenAIExtractor.from_settings(Settings(openai_model=None))
    with pytest.raises(ConfigError):
        OpenAIExtractor("127.0.0.1:8000", "m")


async def test_environment_proxies_are_ignored(endpoint: tuple[str, _Recorder], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{_closed_port()}")
    url, _ = endpoint
    [sel] = await make(url).aextract("q", [window("good")])
    assert sel.tags == [1, 3, 4] and not sel.failed
