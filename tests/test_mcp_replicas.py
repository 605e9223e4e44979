"""Two real ``python -m mcp_server --transport http --stateless`` processes sharing a real
``redis-server`` page cache, behind a round-robin load balancer (``deploy/nginx.conf`` in a real nginx
where it is installed, else a Python proxy), through the SDK's streamable HTTP client.

- one page asked through both replicas at once, then again, is fetched from the page server once;
- two independent client connections (the handshake-era protocol and the 2026-07-28 one) have their
  requests answered by both replicas in turn; the same load balancer in front of replicas *with*
  sessions breaks the handshake-era client, which is what stateless mode is for;
- stateless answers are JSON and carry no session id; with ``--no-json-response`` they stream SSE:
  progress notifications arrive, and a 2026-07-28 client that closes the stream stops the call;
- Redis stopped mid-test: every call still succeeds, each replica logs the outage once.

Skipped, with the reason, where ``redis-server`` is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fixtures.balancers import CLIENT_HEADER, load_balancer

from evals.bench_adapters import PageServer
from evals.bench_replicas import (
    REDIS_MISSING,
    CountingPages,
    RedisServer,
    Replica,
    mcp_client,
    redis_server_path,
    replica_processes,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(redis_server_path() is None, reason=REDIS_MISSING)]

QUERY = "What did the researchers measure in the tide pools in summer?"
ENV = {"ZI_ISAG_EXTRACTOR": "lead"}  # cheap, and passages from every page: the cache and transport are under test
STATELESS = ("--stateless", "--allowed-host", "zi-isag")  # the Host name deploy/nginx.conf sends
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


@pytest.fixture(scope="module")
def pages() -> Iterator[CountingPages]:
    with CountingPages(6, delay=0.3) as server:  # slow enough that concurrent asks overlap
        yield server


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(redis: RedisServer) -> Iterator[list[Replica]]:
    with replica_processes(2, env={**ENV, "ZI_ISAG_CACHE_URL": redis.url}, args=STATELESS) as running:
        yield running


def _backends(replicas: list[Replica]) -> list[str]:
    return [f"http://127.0.0.1:{r.port}" for r in replicas]


async def _extract(url: str, page_urls: list[str], **client: Any) -> Any:
    async with mcp_client(url, **client) as session:
        result = await session.call_tool("web_extract", {"query": QUERY, "urls": page_urls})
    assert not result.is_error, result.content
    assert [s["status"] for s in result.structured_content["sources"]] == ["ok"] * len(page_urls)
    return result.structured_content


async def test_a_page_asked_through_both_replicas_is_fetched_once(
    replicas: list[Replica], pages: CountingPages
) -> None:
    url = pages.urls[0]
    at_once = await asyncio.gather(*(_extract(replicas[i % 2].url, [url]) for i in range(6)))
    again = await asyncio.gather(*(_extract(r.url, [url]) for r in replicas))
    assert pages.fetches["/page/0"] == 1
    assert len({json_passages(r) for r in [*at_once, *again]}) == 1  # every replica read the same page


def json_passages(result: dict[str, Any]) -> str:
    return repr([(p["source"], p["start"], p["end"]) for p in result["passages"]])


def test_stateless_answers_are_json_without_a_session(replicas: list[Replica]) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    answer = httpx.post(replicas[0].url, json=INITIALIZE, headers=headers, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert "mcp-session-id" not in answer.headers
    assert answer.json()["result"]["serverInfo"]["name"] == "zi-isag"


async def test_two_clients_through_a_round_robin_balancer(
    replicas: list[Replica], pages: CountingPages
) -> None:
    with load_balancer(_backends(replicas)) as balancer:

        async def client(name: str, mode: str) -> tuple[list[str], dict[str, Any]]:
            async with mcp_client(balancer.url(), headers={CLIENT_HEADER: name}, mode=mode) as session:
                tools = [t.name for t in (await session.list_tools()).tools]
                result = await session.call_tool("web_extract", {"query": QUERY, "urls": pages.urls[1:3]})
                assert not result.is_error, result.content
                return tools, result.structured_content

        # One after the other, so that strict round robin spreads each connection's own requests;
        # then both at once.
        tools_a, result_a = await client("handshake", "legacy")
        tools_b, result_b = await client("modern", "auto")
        together = await asyncio.gather(client("handshake", "legacy"), client("modern", "auto"))
        assert tools_a == tools_b == ["web_extract"]
        assert result_a["passages"]
        assert {json_passages(r) for r in [result_a, result_b, *(r for _, r in together)]} == {
            json_passages(result_a)
        }
        # Each connection's requests were answered by both replicas, in turn.
        assert balancer.backends_of("handshake") == balancer.backends_of("modern") == {0, 1}
    assert pages.fetches["/page/1"] == pages.fetches["/page/2"] == 1


async def test_sessions_break_behind_the_same_balancer(redis: RedisServer, pages: CountingPages) -> None:
    """The control: replicas with sessions (no --stateless) lose a handshake-era client whose
    requests land on the other replica."""
    env = {**ENV, "ZI_ISAG_CACHE_URL": redis.url}
    with replica_processes(2, env=env, args=("--allowed-host", "zi-isag")) as stateful:
        with load_balancer(_backends(stateful)) as balancer:
            with pytest.raises(BaseException) as caught:  # the SDK raises inside its task group
                await _extract(balancer.url(), pages.urls[:1], mode="legacy")
    assert "session" in _messages(caught.value).lower()


def _messages(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return " ".join(_messages(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


async def test_progress_and_cancellation_in_stateless_sse_mode(
    redis: RedisServer, pages: CountingPages
) -> None:
    env = {**ENV, "ZI_ISAG_CACHE_URL": redis.url, "ZI_ISAG_FETCH_TIMEOUT": "60"}
    with replica_processes(1, env=env, args=(*STATELESS, "--no-json-response")) as (replica,):
        for mode in ("legacy", "auto"):
            events: list[tuple[float, str | None]] = []

            async def on_progress(
                progress: float, total: float | None, message: str | None, events: list[Any] = events
            ) -> None:
                events.append((progress, message))

            async with mcp_client(replica.url, mode=mode) as session:
                result = await session.call_tool(
                    "web_extract", {"query": QUERY, "urls": pages.urls[3:5]}, progress_callback=on_progress
                )
            assert not result.is_error
            assert events and events[-1][0] == 3.0 and any("fetch" in (m or "") for _, m in events), (
                mode,
                events,
            )

        # A 2026-07-28 client cancels by closing the call's stream: the replica stops the page fetch.
        with PageServer() as slow_pages:
            async with mcp_client(replica.url, mode="auto") as session:
                call = asyncio.create_task(
                    session.call_tool("web_extract", {"query": QUERY, "urls": [slow_pages.url("slow")]})
                )
                assert await asyncio.to_thread(slow_pages.slow_started.wait, 30)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
                assert await asyncio.to_thread(slow_pages.slow_disconnected.wait, 10)


async def test_redis_stopped_mid_test(
    replicas: list[Replica], redis: RedisServer, pages: CountingPages
) -> None:
    """Runs last in the module: Redis goes away under running replicas, calls still succeed."""
    await _extract(replicas[0].url, pages.urls[:1])  # served from the cache while Redis is up
    redis.stop()
    try:
        for _ in range(3):
            results = await asyncio.gather(
                *(_extract(r.url, pages.urls[:2] + pages.urls[5:]) for r in replicas)
            )
            assert all(r["passages"] for r in results)
        for replica in replicas:
            outages = [line for line in replica.log().splitlines() if "is unreachable" in line]
            assert len(outages) == 1, outages  # logged once, not per call
    finally:
        redis.start()
