"""robots.txt respect (RFC 9309) with protego, fetched through the fetcher's guarded client.

One robots.txt per origin, read once per ``RobotsPolicy``. As the RFC says: a 4xx answer means no
rules (allow), a server or network error means disallow all.
"""

from __future__ import annotations

import asyncio
import logging
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


class RobotsPolicy:
    def __init__(self, fetch: RobotsFetch, user_agent: str) -> None:
        self._fetch = fetch
        self._agent = user_agent
        self._rules: dict[str, Protego | str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def allowed(self, url: httpx.URL) -> bool:
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        rules = self._rules.get(origin)
        if rules is None:
            lock = self._locks.setdefault(origin, asyncio.Lock())
            async with lock:
                rules = self._rules.get(origin)
                if rules is None:
                    rules = await self._load(origin)
                    self._rules[origin] = rules
        if rules == _ALLOW_ALL:
            return True
        if rules == _DISALLOW_ALL:
            return False
        assert isinstance(rules, Protego)
        return bool(rules.can_fetch(str(url), self._agent))

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
