"""The page cache on Redis, shared by every fetcher (every replica) that points at it.

Entries are the disk cache's (``cache.encode_entry``) under ``zi-isag:page:<sha256 of the URL>``, set
with Redis's own expiry (``ttl``) and checked for freshness again on reading. A URL's fill lock
(``zi-isag:page-lock:<sha256>``, redis-py's ``Lock``: ``SET NX PX`` with a token, released only by its
holder) lets one process fetch a page that several want at once; the others poll until the lock is
gone, then read the cache. A lock whose holder died expires after ``lock_ttl`` seconds.

Redis being down or slow never fails a call: every command has a ``timeout``; a failure is logged once
(and its recovery once), the cache is skipped for ``RETRY_AFTER_S`` seconds at a time, and the call
fetches the page itself. At most ``MAX_COMMANDS`` commands are in flight per cache (a server with
hundreds of pages in flight would otherwise run out of pooled connections and take that for an outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError

from .cache import LocalFlights, cache_key, decode_entry, encode_entry

logger = logging.getLogger(__name__)

KEY_PREFIX = "zi-isag:page:"
LOCK_PREFIX = "zi-isag:page-lock:"
RETRY_AFTER_S = 5.0
"""After a failure, Redis is left alone this long before the next try."""
MAX_COMMANDS = 64
"""Redis commands (so connections) in flight at once per cache; more wait for a slot, at most
``timeout`` seconds, then count as a miss. A busy process is not a Redis that is down."""
POLL_S = (0.02, 0.25)
"""First and longest pause between two looks at a fill lock held by another process."""

T = TypeVar("T")
_FAILURES = (RedisError, OSError, TimeoutError)


class RedisPageCache:
    """A ``PageCache`` on Redis; see the module docstring. Connects on first use."""

    def __init__(
        self,
        url: str,
        ttl: float,
        *,
        max_entry_bytes: int = 2_000_000,
        timeout: float = 2.0,
        lock_ttl: float = 35.0,
    ) -> None:
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self.lock_ttl = lock_ttl
        self._timeout = timeout
        # One quick retry reconnects a pooled connection that a Redis restart closed; more would only
        # make a call wait for a Redis that is gone.
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
            max_connections=MAX_COMMANDS,
        )
        self._slots = asyncio.Semaphore(MAX_COMMANDS)
        self.name = _describe(self._client)
        self._flights = LocalFlights()
        self._down_until: float | None = None
        """While Redis is considered down: when to try it again (monotonic)."""

    def __repr__(self) -> str:
        return f"RedisPageCache({self.name})"

    @property
    def available(self) -> bool:
        """False while Redis is considered down (commands are skipped)."""
        return self._down_until is None or time.monotonic() >= self._down_until

    # --- the PageCache protocol ---------------------------------------------------------------------

    async def get(self, url: str) -> dict[str, Any] | None:
        raw = await self._call(self._client.get(KEY_PREFIX + cache_key(url)))
        if raw is None:
            return None
        try:
            data = await asyncio.to_thread(json.loads, raw)  # up to max_entry_bytes: off the event loop
        except ValueError:
            logger.warning("dropping an unreadable page cache entry in Redis (%s)", self.name)
            await self._call(self._client.delete(KEY_PREFIX + cache_key(url)))
            return None
        return decode_entry(url, data, self.ttl)

    async def put(self, url: str, record: dict[str, Any]) -> None:
        expiry_ms = int(self.ttl * 1000)
        if expiry_ms <= 0:
            return  # stale as soon as stored
        data = await asyncio.to_thread(encode_entry, url, record, self.max_entry_bytes)
        if data is not None:
            await self._call(self._client.set(KEY_PREFIX + cache_key(url), data, px=expiry_ms))

    @contextlib.asynccontextmanager
    async def single_flight(self, url: str) -> AsyncIterator[None]:
        key = cache_key(url)
        async with self._flights.hold(key, self.lock_ttl) as leader:
            if not leader:  # another task of this process fetched it: no need to ask Redis
                yield
                return
            lock = self._client.lock(
                LOCK_PREFIX + key, timeout=self.lock_ttl, blocking=False, thread_local=False
            )
            acquired = await self._call(lock.acquire())
            if acquired is False:  # held by another process: wait for its fetch to end
                await self._wait_unlocked(LOCK_PREFIX + key)
                yield
                return
            try:
                yield  # acquired (or Redis is down: fetch without a lock)
            finally:
                if acquired:
                    await self._release(lock)

    async def aclose(self) -> None:
        with contextlib.suppress(*_FAILURES):
            await self._client.aclose()

    # --- helpers --------------------------------------------------------------------------------------

    async def _call(self, command: Awaitable[T]) -> T | None:
        """``command``'s result, or None when Redis is down or failed (logged once per outage)."""
        if not self.available:
            _close(command)
            return None
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            _close(command)
            logger.debug("page cache: no free Redis connection within %g s; counted as a miss", self._timeout)
            return None
        try:
            async with asyncio.timeout(self._timeout * 2):
                result = await command
        except LockError:
            raise  # about a lock's state, not about Redis being reachable
        except _FAILURES as exc:
            self._failed(exc)
            return None
        finally:
            self._slots.release()
        if self._down_until is not None:
            self._down_until = None
            logger.warning("page cache: Redis at %s is back; fetched pages are shared again", self.name)
        return result

    def _failed(self, exc: BaseException) -> None:
        if self._down_until is None:
            logger.warning(
                "page cache: Redis at %s is unreachable (%s: %s); pages are fetched without the cache "
                "until it is back (tried again every %g s)",
                self.name,
                type(exc).__name__,
                " ".join(str(exc).split())[:200],
                RETRY_AFTER_S,
            )
        self._down_until = time.monotonic() + RETRY_AFTER_S

    async def _wait_unlocked(self, lock_key: str) -> None:
        """Until ``lock_key`` is gone (its holder is done), Redis fails, or ``lock_ttl`` ran out."""
        deadline = time.monotonic() + self.lock_ttl
        pause = POLL_S[0]
        while time.monotonic() < deadline:
            held = await self._call(self._client.exists(lock_key))
            if not held:  # released, expired, or Redis is down
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_S[1])

    async def _release(self, lock: Lock) -> None:
        try:
            await self._call(lock.release())
        except LockError:
            # It expired (a very slow fetch) and maybe another process holds it now: not ours to drop.
            logger.debug("page cache: a fill lock expired before it was released")


def _describe(client: Redis) -> str:
    """``host:port/db`` (or the socket path) of the client, without credentials, for logs."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _close(command: Awaitable[Any]) -> None:
    """Close an unawaited coroutine, so skipping it leaves no 'never awaited' warning."""
    close = getattr(command, "close", None)
    if close is not None:
        close()
