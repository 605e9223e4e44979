"""Page caches: converted pages kept between calls, keyed by URL, with an expiry.

Two stores with the same entries, keys and expiry rules:

- ``DiskPageCache`` (``cache_dir``): one JSON file per URL (``<dir>/<2 hex>/<sha256>.json``), written
  atomically. Unreadable or expired entries are removed and count as a miss; a cache that cannot be
  written only logs a warning.
- ``RedisPageCache`` (``cache_url=redis://...``, in ``redis_cache``): shared by every process that
  points at the same Redis, so replicas behind a load balancer fetch each page once.

An entry is the fetcher's record plus ``format``, ``url`` and ``stored_at``, as JSON; one larger than
``max_entry_bytes`` is not stored. It is fresh for ``ttl`` seconds after ``stored_at`` (as the
reader's own settings count them). ``single_flight(url)`` is held around fetching a missed URL so that
callers asking for it at the same time wait for one fetch instead of each making their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

_FORMAT = 1
LOCK_MARGIN_S = 5.0
"""Added to the longest a fetch may take, for how long one caller may hold a URL's fill lock."""


class PageCache(Protocol):
    """Where fetched pages are kept. No method raises because the store is unreachable or broken:
    a store that fails is a miss (``get``), a no-op (``put``) or no wait (``single_flight``)."""

    async def get(self, url: str) -> dict[str, Any] | None:
        """The stored record for ``url`` if present and fresh, else None."""
        ...

    async def put(self, url: str, record: dict[str, Any]) -> None:
        """Store ``record`` (JSON-serialisable) for ``url``, unless its entry is over the size cap."""
        ...

    def single_flight(self, url: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Held around fetching ``url`` after a miss: on entering, this caller holds the URL's fill
        lock, or the caller that held it has finished (or the wait ran out). Look in the cache again
        inside, then fetch only on a second miss."""
        ...

    async def aclose(self) -> None: ...


def cache_key(url: str) -> str:
    """The key of ``url`` in every store: the SHA-256 of the URL, in hex."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def encode_entry(url: str, record: dict[str, Any], max_bytes: int) -> bytes | None:
    """The entry for ``record`` as JSON bytes, or None when it is larger than ``max_bytes``."""
    data = json.dumps(
        {**record, "format": _FORMAT, "url": url, "stored_at": time.time()}, ensure_ascii=False
    ).encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        logger.debug(
            "not caching %s: its entry has %d bytes, over the %d-byte cap", url, len(data), max_bytes
        )
        return None
    return data


def decode_entry(url: str, data: Any, ttl: float) -> dict[str, Any] | None:
    """The record in a stored entry (parsed JSON) if it is well formed, for ``url`` and fresh."""
    if (
        not isinstance(data, dict)
        or data.get("format") != _FORMAT
        or data.get("url") != url
        or not isinstance(data.get("stored_at"), (int, float))
    ):
        return None
    if time.time() - data["stored_at"] > ttl:
        return None
    return data


class LocalFlights:
    """Single flight within one process: the first caller for a key leads, later ones wait for it.

    Entries exist only while a leader runs, so a long-lived server does not keep one per URL.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Event] = {}

    def __len__(self) -> int:
        return len(self._running)

    @contextlib.asynccontextmanager
    async def hold(self, key: str, wait: float) -> AsyncIterator[bool]:
        """Yields True to the leader; False to a follower once the leader is done or ``wait`` ran out."""
        running = self._running.get(key)
        if running is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await running.wait()
            yield False
            return
        done = self._running[key] = asyncio.Event()
        try:
            yield True
        finally:
            done.set()
            if self._running.get(key) is done:
                del self._running[key]


class DiskPageCache:
    """The on-disk store (see the module docstring); single flight is per process."""

    def __init__(
        self, directory: Path, ttl: float, *, max_entry_bytes: int = 2_000_000, lock_ttl: float = 35.0
    ) -> None:
        self.directory = Path(directory).expanduser()
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self.lock_ttl = lock_ttl
        self._flights = LocalFlights()

    def _path(self, url: str) -> Path:
        digest = cache_key(url)
        return self.directory / digest[:2] / f"{digest}.json"

    async def get(self, url: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.get_now, url)

    async def put(self, url: str, record: dict[str, Any]) -> None:
        await asyncio.to_thread(self.put_now, url, record)

    @contextlib.asynccontextmanager
    async def single_flight(self, url: str) -> AsyncIterator[None]:
        async with self._flights.hold(cache_key(url), self.lock_ttl):
            yield

    async def aclose(self) -> None:
        return None

    def get_now(self, url: str) -> dict[str, Any] | None:
        """``get``, blocking (file I/O on the calling thread)."""
        path = self._path(url)
        try:
            with path.open("r", encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("dropping unreadable cache entry %s: %s", path.name, type(exc).__name__)
            self._remove(path)
            return None
        record = decode_entry(url, data, self.ttl)
        if record is None:
            self._remove(path)
        return record

    def put_now(self, url: str, record: dict[str, Any]) -> None:
        """``put``, blocking (file I/O on the calling thread)."""
        data = encode_entry(url, record, self.max_entry_bytes)
        if data is None:
            return
        path = self._path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                self._remove(Path(tmp))
                raise
        except OSError as exc:
            logger.warning("could not write the page cache in %s: %s", self.directory, exc)

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass


def open_page_cache(settings: Settings) -> PageCache | None:
    """The page cache ``settings`` ask for: Redis (``cache_url``), else disk (``cache_dir``), else None.

    Nothing is connected here: a Redis that is down only makes its calls fetch directly.
    """
    lock_ttl = 2 * settings.fetch_timeout + LOCK_MARGIN_S  # a fetch may wait for a slot, then run
    if settings.cache_url is not None:
        from .redis_cache import RedisPageCache

        return RedisPageCache(
            settings.cache_url.get_secret_value(),
            settings.cache_ttl,
            max_entry_bytes=settings.cache_max_entry_bytes,
            timeout=settings.cache_timeout,
            lock_ttl=lock_ttl,
        )
    if settings.cache_dir is not None:
        return DiskPageCache(
            settings.cache_dir,
            settings.cache_ttl,
            max_entry_bytes=settings.cache_max_entry_bytes,
            lock_ttl=lock_ttl,
        )
    return None
