"""robots.txt respect (RFC 9309) with protego, fetched through the fetcher's guarded client.

One robots.txt per origin, read once and kept for ``ttl`` seconds (the RFC's 24 hours at most) in a
cache of at most ``max_origins`` origins, least recently used first out: a long-lived server that
sees many sites keeps bounded state. Concurrent checks of one origin share one request. As the RFC
says: a 4xx answer means no rules (allow), a server or network error means disallow all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import httpx
from protego import Protego

logger = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 500 * 1024
"""RFC 9309 asks parsers to read at least 500 KiB; anything after is ignored."""

RobotsFetch = Callable[[str], Awaitable[tuple[int, bytes]]]
"""Gets a URL through the guard, following redirects; returns (status code, body up to the cap)."""

_ALLOW_ALL = "allow"
_DISALLOW_ALL = "disallow"


DEFAULT_TTL_S = 24 * 3600.0
DEFAULT_MAX_ORIGINS = 1024


class RobotsPolicy:
    def __init__(
        self,
        fetch: RobotsFetch,
        user_agent: str,
        *,
        ttl: float = DEFAULT_TTL_S,
        max_origins: int = DEFAULT_MAX_ORIGINS,
    ) -> None:
        self._fetch = fetch
        self._agent = user_agent
        self._ttl = ttl
        self._max_origins = max_origins
        self._rules: OrderedDict[str, tuple[float, Protego | str]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Protego | str]] = {}

    def __len__(self) -> int:
        """Origins whose rules are kept now."""
        return len(self._rules)

    async def allowed(self, url: httpx.URL) -> bool:
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        rules = self._cached(origin)
        if rules is None:
            rules = await self._shared_load(origin)
        if rules == _ALLOW_ALL:
            return True
        if rules == _DISALLOW_ALL:
            return False
        assert isinstance(rules, Protego)
        return bool(rules.can_fetch(str(url), self._agent))

    async def aclose(self) -> None:
        """Stop robots.txt requests still in flight."""
        pending = list(self._loading.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _cached(self, origin: str) -> Protego | str | None:
        entry = self._rules.get(origin)
        if entry is None:
            return None
        loaded_at, rules = entry
        if time.monotonic() - loaded_at > self._ttl:
            del self._rules[origin]
            return None
        self._rules.move_to_end(origin)
        return rules

    async def _shared_load(self, origin: str) -> Protego | str:
        loading = self._loading.get(origin)
        if loading is None:
            # One request per origin however many pages ask at once; it outlives a cancelled asker.
            loading = self._loading[origin] = asyncio.ensure_future(self._load(origin))
            loading.add_done_callback(lambda _done: self._store(origin, _done))
        return await asyncio.shield(loading)

    def _store(self, origin: str, done: asyncio.Future[Protego | str]) -> None:
        self._loading.pop(origin, None)
        if done.cancelled() or done.exception() is not None:
            return
        self._rules[origin] = (time.monotonic(), done.result())
        self._rules.move_to_end(origin)
        while len(self._rules) > self._max_origins:
            self._rules.popitem(last=False)

    async def _load(self, origin: str) -> Protego | str:
        try:
            status, body = await self._fetch(f"{origin}/robots.txt")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - RFC 9309: unreachable robots.txt means disallow
            logger.info("robots.txt of %s unreachable (%s): disallowing", origin, type(exc).__name__)
            return _DISALLOW_ALL
        if 400 <= status < 500:
            return _ALLOW_ALL
        if status != 200:
            return _DISALLOW_ALL
        text = body[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace")
        return Protego.parse(text)
