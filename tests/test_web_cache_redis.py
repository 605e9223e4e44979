"""The page caches against real stores: a real ``redis-server`` (Debian's package; the tests skip with
the reason when it is not installed) and the disk.

Same entries, keys and expiry rules in both; a size cap per entry; fetchers that miss the same URL at
once (in one process, or in several sharing Redis) fetch it once; Redis down or gone mid-way only
makes the fetcher fetch, with one warning per outage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from fixtures.web.web_servers import LocalServer, html_page, send

from evals.bench_replicas import REDIS_MISSING, RedisServer, redis_server_path
from zi_isag_tool.settings import Settings
from zi_isag_tool.web import redis_cache
from zi_isag_tool.web.cache import DiskPageCache, cache_key, open_page_cache
from zi_isag_tool.web.fetch import Fetcher
from zi_isag_tool.web.redis_cache import KEY_PREFIX, LOCK_PREFIX, RedisPageCache

needs_redis = pytest.mark.skipif(redis_server_path() is None, reason=REDIS_MISSING)

SLOW_S = 0.4
"""How long the page server takes for /slow: long enough for every concurrent caller to miss."""

RECORD = {
    "final_url": "https://example.org/a",
    "content_type": "text/html",
    "text": "Some text.",
    "title": "A",
}


def _slow(h: BaseHTTPRequestHandler) -> None:
    time.sleep(SLOW_S)
    send(
        h,
        200,
        html_page("Slow page", "Heat pumps keep working in the cold.").encode(),
        "text/html; charset=utf-8",
    )


@pytest.fixture(scope="module")
def pages() -> Iterator[LocalServer]:
    routes = {
        "/slow": _slow,
        "/fast": lambda h: send(h, 200, html_page("Fast", "A quick page about tides.").encode(), "text/html"),
        "/missing": lambda h: send(h, 404, b"no", "text/plain"),
    }
    with LocalServer(routes) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    if redis_server_path() is None:
        pytest.skip(REDIS_MISSING)
    with RedisServer() as server:
        yield server


def _settings(**values: object) -> Settings:
    base: dict[str, object] = {"allow_private_networks": True, "fetch_timeout": 5.0, "cache_ttl": 3600}
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[arg-type, call-arg]


# --- the store ---------------------------------------------------------------------------------------
@needs_redis
async def test_redis_entry_matches_the_disk_entry(redis: RedisServer, tmp_path: Path) -> None:
    url = "https://example.org/a?b=1"
    disk = DiskPageCache(tmp_path, ttl=60)
    shared = RedisPageCache(redis.url, ttl=60)
    await disk.put(url, RECORD)
    await shared.put(url, RECORD)
    on_disk = json.loads((tmp_path / cache_key(url)[:2] / f"{cache_key(url)}.json").read_text())
    in_redis = json.loads(
        redis.command("GET", KEY_PREFIX + cache_key(url)).split(b"\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
    )
    assert on_disk.keys() == in_redis.keys() == {*RECORD, "format", "url", "stored_at"}
    assert {k: v for k, v in in_redis.items() if k != "stored_at"} == {
        k: v for k, v in on_disk.items() if k != "stored_at"
    }
    assert (await shared.get(url)) == in_redis and (await disk.get(url)) == on_disk
    # Redis expires the key itself after the ttl.
    ttl_ms = int(redis.command("PTTL", KEY_PREFIX + cache_key(url))[1:].split(b"\r\n")[0])
    assert 55_000 < ttl_ms <= 60_000
    assert await shared.get("https://example.org/other") is None
    await shared.aclose()


@needs_redis
async def test_expiry_and_size_cap(redis: RedisServer) -> None:
    url = "https://example.org/a"
    short = RedisPageCache(redis.url, ttl=0.3)
    await short.put(url, RECORD)
    assert await short.get(url) is not None
    await asyncio.sleep(0.45)
    assert await short.get(url) is None  # gone from Redis
    # A reader with a shorter ttl than the writer's counts the entry stale from stored_at.
    writer, reader = RedisPageCache(redis.url, ttl=60), RedisPageCache(redis.url, ttl=0.2)
    await writer.put(url, RECORD)
    await asyncio.sleep(0.3)
    assert await reader.get(url) is None and await writer.get(url) is not None
    # Over the cap: not stored at all; ttl 0: never stored.
    capped = RedisPageCache(redis.url, ttl=60, max_entry_bytes=1024)
    await capped.put("https://example.org/big", {**RECORD, "text": "x" * 2000})
    await RedisPageCache(redis.url, ttl=0).put("https://example.org/zero", RECORD)
    assert redis.command("EXISTS", KEY_PREFIX + cache_key("https://example.org/big")) == b":0\r\n"
    assert redis.command("EXISTS", KEY_PREFIX + cache_key("https://example.org/zero")) == b":0\r\n"
    # A corrupt entry is a miss, and is dropped.
    redis.command("SET", KEY_PREFIX + cache_key("https://example.org/bad"), "{not json")
    assert await writer.get("https://example.org/bad") is None
    assert redis.command("EXISTS", KEY_PREFIX + cache_key("https://example.org/bad")) == b":0\r\n"
    for cache in (short, writer, reader, capped):
        await cache.aclose()


def test_settings_choose_the_store(tmp_path: Path) -> None:
    assert open_page_cache(_settings()) is None
    assert isinstance(open_page_cache(_settings(cache_dir=tmp_path)), DiskPageCache)
    redis_cache = open_page_cache(_settings(cache_dir=tmp_path, cache_url="redis://:hunter2@127.0.0.1:1/0"))
    assert isinstance(redis_cache, RedisPageCache)  # the shared store wins over the disk
    assert "hunter2" not in repr(redis_cache) and "hunter2" not in repr(
        _settings(cache_url="redis://:hunter2@h:1")
    )
    with pytest.raises(ValueError, match="must be a Redis URL"):
        _settings(cache_url="http://127.0.0.1:6379")


# --- fetchers sharing a store ---------------------------------------------------------------------------------
@needs_redis
async def test_fetchers_sharing_redis_fetch_a_page_once(redis: RedisServer, pages: LocalServer) -> None:
    """Three fetchers (as three replicas would), eight concurrent asks each: one request to the page."""
    settings = _settings(cache_url=redis.url)
    before = pages.hits("/slow")
    async with Fetcher(settings) as a, Fetcher(settings) as b, Fetcher(settings) as c:
        got = await asyncio.gather(*(f.fetch(pages.url("/slow")) for f in (a, b, c) for _ in range(8)))
        again = await b.fetch(pages.url("/slow"))
    assert {(p.status, p.text) for p in got} == {("ok", got[0].text)}
    assert pages.hits("/slow") == before + 1
    assert sum(not p.from_cache for p in got) == 1 and again.from_cache
    assert redis.command("KEYS", LOCK_PREFIX + "*") == b"*0\r\n"  # the fill lock was released


@needs_redis
async def test_many_fetches_at_once_are_not_an_outage(
    redis: RedisServer, pages: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """More concurrent fetches than Redis connections a cache opens: they wait for one, and every
    page is still fetched once (no fetcher takes its own pool limit for Redis being down)."""
    caplog.set_level(logging.WARNING, logger="zi_isag_tool.web")
    settings = _settings(cache_url=redis.url, max_concurrency=64, per_host_concurrency=64)
    urls = [pages.url(f"/slow?n={i}") for i in range(40)]
    async with Fetcher(settings) as a, Fetcher(settings) as b:
        got = await asyncio.gather(*(f.fetch(url) for f in (a, b) for url in urls for _ in range(3)))
    assert {p.status for p in got} == {"ok"}
    assert [pages.hits(f"/slow?n={i}") for i in range(40)] == [1] * 40
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]


async def test_disk_cache_fetches_a_page_once_per_process(pages: LocalServer, tmp_path: Path) -> None:
    before = pages.hits("/slow")
    async with Fetcher(_settings(cache_dir=tmp_path)) as fetcher:
        got = await asyncio.gather(*(fetcher.fetch(pages.url("/slow")) for _ in range(6)))
    assert [p.status for p in got] == ["ok"] * 6 and pages.hits("/slow") == before + 1


@needs_redis
async def test_failures_are_not_cached_and_waiters_fetch_themselves(
    redis: RedisServer, pages: LocalServer
) -> None:
    settings = _settings(cache_url=redis.url)
    before = pages.hits("/missing")
    async with Fetcher(settings) as a, Fetcher(settings) as b:
        got = await asyncio.gather(a.fetch(pages.url("/missing")), b.fetch(pages.url("/missing")))
    assert [p.status for p in got] == ["http_error", "http_error"]
    assert 1 <= pages.hits("/missing") - before <= 2  # the waiter, finding no page, asked again


@needs_redis
async def test_a_dead_holders_lock_delays_but_never_blocks(redis: RedisServer, pages: LocalServer) -> None:
    """A replica that died holding a URL's fill lock: the others wait at most until it expires."""
    url = pages.url("/fast")
    redis.command("SET", LOCK_PREFIX + cache_key(url), "dead-replica", "PX", "600")
    async with Fetcher(_settings(cache_url=redis.url)) as fetcher:
        started = time.monotonic()
        page = await fetcher.fetch(url)
    assert page.status == "ok" and not page.from_cache
    assert time.monotonic() - started >= 0.4  # it waited for the lock, which expired after 0.6 s


# --- Redis down ----------------------------------------------------------------------------------------------
@needs_redis
async def test_redis_going_down_and_back(
    redis: RedisServer, pages: LocalServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="zi_isag_tool.web")
    monkeypatch.setattr(redis_cache, "RETRY_AFTER_S", 0.2)  # try a down Redis again sooner than 5 s
    url = pages.url("/fast")
    async with Fetcher(_settings(cache_url=redis.url)) as fetcher:
        assert (await fetcher.fetch(url)).status == "ok"
        assert (await fetcher.fetch(url)).from_cache
        redis.stop()
        before = pages.hits("/fast")
        down = [await fetcher.fetch(url) for _ in range(5)]
        down += await asyncio.gather(*(fetcher.fetch(url) for _ in range(5)))
        assert [(p.status, p.from_cache) for p in down] == [("ok", False)] * 10
        assert pages.hits("/fast") - before >= 6  # fetched directly (in-process callers still share)
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1 and "127.0.0.1" in warnings[0].getMessage()

        redis.start()
        await asyncio.sleep(0.25)
        assert (await fetcher.fetch(url)).status == "ok"  # stored again
        assert (await fetcher.fetch(url)).from_cache
    assert sum("is back;" in r.getMessage() for r in caplog.records) == 1


async def test_unreachable_redis_from_the_start(pages: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    """No Redis at all (nothing listens on the port): every fetch works, one warning."""
    caplog.set_level(logging.WARNING, logger="zi_isag_tool.web")
    from evals.local_servers import free_port

    settings = _settings(cache_url=f"redis://127.0.0.1:{free_port()}/0", cache_timeout=0.5)
    async with Fetcher(settings) as fetcher:
        got = [await fetcher.fetch(pages.url("/fast")) for _ in range(4)]
    assert [p.status for p in got] == ["ok"] * 4
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1


async def test_silent_redis_costs_at_most_the_timeout(
    pages: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A 'Redis' that accepts connections and never answers: the fetch goes on after the timeout."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        settings = _settings(cache_url=f"redis://127.0.0.1:{listener.getsockname()[1]}/0", cache_timeout=0.3)
        async with Fetcher(settings) as fetcher:
            started = time.monotonic()
            first = await fetcher.fetch(pages.url("/fast"))
            first_s = time.monotonic() - started
            started = time.monotonic()
            second = await fetcher.fetch(pages.url("/fast"))
            second_s = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
    assert first.status == second.status == "ok"
    assert second_s < first_s  # the store is skipped while it is considered down
