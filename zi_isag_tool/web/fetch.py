"""Async, guarded page fetcher: every source ends as a ``FetchedPage`` with a status, never an exception.

Per page: URL guard (SSRF) on every redirect hop, optional robots.txt, a global and a per-host
concurrency cap, connect/read timeouts and an overall deadline, a cap on *decoded* bytes (the body is
decompressed here, in bounded steps, so a gzip bomb stops at the cap), then conversion to markdown or
plain text in a worker process of the fetcher's ``ConversionPool`` (a crash or an overrun there costs
that page only, and the deadline stops the conversion's CPU work). Converted pages can be kept in a
page cache (on disk, or on Redis shared by several replicas; see ``cache``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import InputError
from ..types import Link, SourceStatus
from .cache import open_page_cache
from .convert import ConvertedPage, ConvertOptions, convert_file, markdown_title
from .convert_pool import ConversionFailed, ConversionPool, PageConverter, PageJob, convert_page
from .guard import (
    BlockedURLError,
    GuardedTransport,
    Resolver,
    UnresolvableHostError,
    UrlGuard,
    pinned_addresses,
    unpinned_transport,
)
from .robots import ROBOTS_MAX_BYTES, RobotsPolicy
from .search import SearchHit

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

OnDone = Callable[[int, int], Awaitable[None] | None]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset({"text/plain"})
_MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown"})
_PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
# Served by some sites for any download: read (under the cap) and sniff.
_SNIFF_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/markdown;q=0.9,text/plain;q=0.8,application/pdf;q=0.7,*/*;q=0.1"
_MESSAGE_MAX = 200


@dataclass(slots=True)
class FetchedPage:
    """The outcome of fetching one URL. ``text`` is converted markdown/plain text when ``status == "ok"``."""

    url: str
    final_url: str
    status: SourceStatus
    error: str | None
    content_type: str | None
    text: str | None
    title: str
    from_cache: bool = False
    links: tuple[Link, ...] = ()
    """Outgoing links of the page's main content (their targets are not in ``text``)."""

    @classmethod
    def from_search_hit(cls, hit: SearchHit) -> FetchedPage | None:
        """A page built from a search hit's raw content (no fetch needed), or None when it has none."""
        if not hit.raw_content or not hit.raw_content.strip():
            return None
        return cls(
            url=hit.url,
            final_url=hit.url,
            status="ok",
            error=None,
            content_type="text/markdown",
            text=hit.raw_content,
            title=hit.title or markdown_title(hit.raw_content),
        )


class _Problem(Exception):
    """A per-page failure with its status and a short, safe message."""

    def __init__(self, status: SourceStatus, message: str) -> None:
        super().__init__(message)
        self.status: SourceStatus = status
        self.message = message


class Fetcher:
    """Fetch pages concurrently under the limits of ``Settings``; see the module docstring.

    ``resolver`` replaces DNS (tests, split-horizon setups). ``transport`` replaces the guarded httpx
    transport: the URL guard still checks every hop, but connections are pinned to the checked
    addresses only when it is a ``GuardedTransport`` (otherwise a warning says so, and ``pinned`` is
    False); ``settings.fetch_proxy`` has the same effect, since the proxy resolves names itself.
    ``converter`` is the picklable function each page's body is converted with in a worker process
    of ``pool``; without a ``pool`` the fetcher starts its own and stops it when closed
    (``async with``), while a given pool stays its owner's to close.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        converter: PageConverter = convert_page,
        pool: ConversionPool | None = None,
    ) -> None:
        self.settings = settings
        self._guard = UrlGuard(allow_private=settings.allow_private_networks, resolver=resolver)
        limits = httpx.Limits(
            max_connections=settings.max_concurrency * 2,
            max_keepalive_connections=settings.max_concurrency,
        )
        if transport is None and settings.fetch_proxy:
            transport = unpinned_transport(settings.fetch_proxy, limits=limits)
            logger.warning(
                "fetching through the proxy %s: the URL guard still checks every URL and redirect, but "
                "the proxy resolves names itself, so connections are not pinned to the checked "
                "addresses (DNS rebinding is possible there); restrict the proxy's own egress",
                _proxy_name(settings.fetch_proxy),
            )
        elif transport is None:
            transport = GuardedTransport(limits=limits)
        elif not isinstance(transport, GuardedTransport):
            logger.warning(
                "Fetcher got a custom transport (%s): the URL guard still checks every URL, but "
                "connections are not pinned to the checked addresses (DNS rebinding is possible); "
                "use GuardedTransport(network_backend=...) to keep the pinning",
                type(transport).__name__,
            )
        self.pinned = isinstance(transport, GuardedTransport)
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.read_timeout,
                pool=settings.fetch_timeout,
            ),
            headers={
                "User-Agent": settings.user_agent,
                "Accept": _ACCEPT,
                # Only codings decoded here with a bounded output size (see _BoundedDecoder).
                "Accept-Encoding": "gzip, deflate",
            },
        )
        self._global = asyncio.Semaphore(settings.max_concurrency)
        self._per_host = _HostSlots(settings.per_host_concurrency)
        self._cache = open_page_cache(settings)
        self._robots = (
            RobotsPolicy(self._get_robots, settings.user_agent) if settings.respect_robots else None
        )
        self._converter = converter
        self._convert_options = ConvertOptions.from_settings(settings)
        self._owns_pool = pool is None
        self._pool = pool or ConversionPool(settings.convert_workers, memory_mb=settings.convert_memory_mb)

    @classmethod
    def from_settings(cls, settings: Settings, *, pool: ConversionPool | None = None) -> Fetcher:
        return cls(settings, pool=pool)

    async def aclose(self) -> None:
        try:
            if self._robots is not None:
                await self._robots.aclose()
            await self._client.aclose()
            if self._cache is not None:
                await self._cache.aclose()
        finally:
            if self._owns_pool:
                await self._pool.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- public ------------------------------------------------------------------------------------

    async def fetch(self, url: str) -> FetchedPage:
        """Fetch and convert one page. Per-page problems become a status; only cancellation propagates."""
        try:
            if self._cache is None:
                return await self._download(url)
            cached = await self._cache_get(url)
            if cached is not None:
                return cached
            # Callers missing the same URL at once (here, or in every replica sharing a Redis cache)
            # wait for one fetch and read its result from the cache.
            async with self._cache.single_flight(url):
                cached = await self._cache_get(url)
                if cached is not None:
                    return cached
                page = await self._download(url)
                await self._cache_put(page)
                return page
        except _Problem as problem:
            logger.info("fetch %s: %s (%s)", url, problem.status, problem.message)
            return _failed(url, problem.status, problem.message)
        except Exception as exc:  # noqa: BLE001 - one page's bug must not stop the others
            logger.exception("unexpected error while fetching %s", url)
            return _failed(url, "error", f"unexpected error ({type(exc).__name__})")

    async def fetch_many(self, urls: Sequence[str], *, on_done: OnDone | None = None) -> list[FetchedPage]:
        """Fetch all ``urls`` concurrently; results in input order. Cancelling stops every fetch."""
        total = len(urls)
        if urls:
            self._pool.warm()  # workers start while the first pages download
        counts: dict[str, int] = {}
        for url in urls:
            counts[url] = counts.get(url, 0) + 1
        tasks = {asyncio.create_task(self.fetch(url)): url for url in counts}
        results: dict[str, FetchedPage] = {}
        done = 0
        try:
            pending: set[asyncio.Task[FetchedPage]] = set(tasks)
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    url = tasks[task]
                    results[url] = task.result()
                    done += counts[url]
                    if on_done is not None:
                        outcome = on_done(done, total)
                        if inspect.isawaitable(outcome):
                            await outcome
        finally:
            # On cancellation (or a failing callback) stop the rest and wait until their sockets are closed.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # A repeated URL gets its own copy, so callers may annotate pages independently.
        seen: set[str] = set()
        ordered: list[FetchedPage] = []
        for url in urls:
            ordered.append(results[url] if url not in seen else replace(results[url]))
            seen.add(url)
        return ordered

    async def convert_local_file(self, path: Path) -> ConvertedPage:
        """A local file converted in a worker like fetched pages (with the same options).

        Raises what ``convert.convert_file`` raises, or ``ConversionFailed``."""
        return await self._pool.run(
            convert_file, Path(path), self._convert_options, timeout=self.settings.fetch_timeout
        )

    # --- one page ----------------------------------------------------------------------------------

    async def _download(self, url: str) -> FetchedPage:
        """Fetch and convert ``url`` under the concurrency caps and the page deadline."""
        async with self._host_slot(url), self._global:
            progress = _Progress()
            try:
                async with asyncio.timeout(self.settings.fetch_timeout) as deadline:
                    return await self._fetch_page(url, deadline, progress)
            except TimeoutError:
                if progress.converting:
                    raise _Problem(
                        "timeout",
                        f"conversion did not finish within the {self.settings.fetch_timeout:g} s page "
                        "deadline; stopped",
                    ) from None
                raise _Problem(
                    "timeout", f"no complete answer within the {self.settings.fetch_timeout:g} s deadline"
                ) from None

    async def _fetch_page(self, url: str, deadline: asyncio.Timeout, progress: _Progress) -> FetchedPage:
        async with self._open(url, check_robots=True) as (final_url, response):
            if response.status_code >= 400 or response.status_code in _REDIRECTS:
                raise _Problem("http_error", f"HTTP {response.status_code} {response.reason_phrase}".strip())
            header = response.headers.get("content-type")
            media = (header or "").split(";", 1)[0].strip().lower()
            kind = _kind_of(media)
            if kind is None:
                raise _Problem(
                    "unsupported", f"unsupported content type {media!r}: only HTML, text, markdown, PDF"
                )
            body = await self._read_capped(response, self.settings.max_page_bytes)
        if kind == "sniff":
            kind = _sniff(body)
            if kind is None:
                raise _Problem(
                    "unsupported",
                    f"unsupported content ({media or 'no content type'}, not HTML, text or PDF)",
                )
        progress.converting = True
        when = deadline.when()
        remaining = None if when is None else max(0.001, when - asyncio.get_running_loop().time())
        job = PageJob(kind, body, header, str(final_url), self._convert_options)  # type: ignore[arg-type]
        try:
            page = await self._pool.run(self._converter, job, timeout=remaining)
        except ConversionFailed as failed:
            raise _Problem(failed.status, failed.message) from None
        except InputError as exc:  # an unreadable PDF
            raise _Problem("error", str(exc)) from None
        progress.converting = False
        if not page.text.strip():
            raise _Problem("error", "no readable text on the page")
        content_type = {"html": "text/html", "pdf": "application/pdf"}.get(kind, media or "text/plain")
        return FetchedPage(url, str(final_url), "ok", None, content_type, page.text, page.title, links=page.links)

    @contextlib.asynccontextmanager
    async def _open(self, url: str, *, check_robots: bool) -> AsyncIterator[tuple[httpx.URL, httpx.Response]]:
        """GET ``url``, following redirects by hand: each hop is checked by the guard (and robots.txt)."""
        current: str | httpx.URL = url
        for _hop in range(self.settings.max_redirects + 1):
            try:
                target = await self._guard.check(current)
            except BlockedURLError as exc:
                raise _Problem("blocked", str(exc)) from None
            except UnresolvableHostError as exc:
                raise _Problem("error", str(exc)) from None
            if check_robots and self._robots is not None and not await self._robots.allowed(target.url):
                raise _Problem("blocked", "disallowed by the site's robots.txt")
            request = self._client.build_request("GET", target.url)
            try:
                with pinned_addresses(target):
                    response = await self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise _Problem("timeout", _timeout_message(exc)) from None
            except httpx.HTTPError as exc:
                detail = str(exc) or type(exc).__name__
                raise _Problem("error", _safe(f"connection failed: {detail}")) from None
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    try:
                        current = target.url.join(location.strip())
                    except (httpx.InvalidURL, ValueError):
                        raise _Problem("error", "redirect to an invalid URL") from None
                    continue
                try:
                    yield target.url, response
                except httpx.TimeoutException as exc:
                    raise _Problem("timeout", _timeout_message(exc)) from None
                except httpx.HTTPError as exc:
                    raise _Problem(
                        "error", _safe(f"connection failed while reading: {type(exc).__name__}")
                    ) from None
                return
            finally:
                await response.aclose()
        raise _Problem("error", f"too many redirects (more than {self.settings.max_redirects})")

    async def _read_capped(self, response: httpx.Response, cap: int) -> bytes:
        """The decoded body, or ``too_large`` as soon as more than ``cap`` bytes would be produced."""
        declared = response.headers.get("content-length", "")
        encoding = response.headers.get("content-encoding", "").strip().lower()
        decoder = _BoundedDecoder(encoding)
        if decoder.identity and declared.isdigit() and int(declared) > cap:
            raise _Problem(
                "too_large", f"page is larger than the {cap}-byte limit ({declared} bytes declared)"
            )
        chunks: list[bytes] = []
        total = 0
        async for raw in response.aiter_raw():
            piece, over = decoder.feed(raw, cap - total)
            total += len(piece)
            chunks.append(piece)
            if over:
                raise _Problem("too_large", f"page is larger than the {cap}-byte limit")
        return b"".join(chunks)

    async def _get_robots(self, url: str) -> tuple[int, bytes]:
        """robots.txt through the same guard; raises on network errors (robots.py decides)."""
        async with asyncio.timeout(self.settings.fetch_timeout):
            return await self._get_robots_now(url)

    async def _get_robots_now(self, url: str) -> tuple[int, bytes]:
        async with self._open(url, check_robots=False) as (_final, response):
            if response.status_code != 200:
                return response.status_code, b""
            try:
                body = await self._read_capped(response, ROBOTS_MAX_BYTES)
            except _Problem as problem:
                if problem.status != "too_large":
                    raise
                body = b""  # an oversized robots.txt: treat as no rules rather than refuse the site
            return 200, body

    # --- helpers -----------------------------------------------------------------------------------

    def _host_slot(self, url: str) -> contextlib.AbstractAsyncContextManager[None]:
        try:
            host = httpx.URL(url).host.lower()
        except (httpx.InvalidURL, TypeError, ValueError):
            host = ""
        return self._per_host.hold(host)

    async def _cache_get(self, url: str) -> FetchedPage | None:
        if self._cache is None:
            return None
        record = await self._cache.get(url)
        if record is None:
            return None
        if record.get("private_allowed", True) and not self.settings.allow_private_networks:
            # Fetched by a fetcher allowed to reach private addresses: never hand it to a stricter one.
            return None
        if record.get("convert") != _options_record(self._convert_options):
            return None  # converted with other options (e.g. links kept): convert again
        try:
            return FetchedPage(
                url=url,
                final_url=str(record["final_url"]),
                status="ok",
                error=None,
                content_type=record.get("content_type"),
                text=str(record["text"]),
                title=str(record.get("title") or ""),
                from_cache=True,
                links=tuple(Link(str(u), str(t)) for u, t in record.get("links") or ()),
            )
        except (KeyError, TypeError, ValueError):
            return None

    async def _cache_put(self, page: FetchedPage) -> None:
        if self._cache is None or page.status != "ok" or page.from_cache:
            return
        record: dict[str, Any] = {
            k: v for k, v in asdict(page).items() if k in ("final_url", "content_type", "text", "title")
        }
        record["private_allowed"] = self.settings.allow_private_networks
        record["convert"] = _options_record(self._convert_options)
        record["links"] = [[link.url, link.text] for link in page.links]
        await self._cache.put(page.url, record)


# --- module helpers ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Progress:
    """Where one page's fetch is, so a deadline can say what it interrupted."""

    converting: bool = False


class _HostSlots:
    """Per-host concurrency caps that exist only while a fetch of that host runs or waits.

    A long-lived server sees many host names; an entry per name kept forever would grow without
    bound, and evicting a semaphore still in use would break the cap.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._slots)

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        slot = self._slots.get(host)
        if slot is None:
            slot = self._slots[host] = (asyncio.Semaphore(self._limit), [0])
        semaphore, users = slot
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._slots[host]


class _BoundedDecoder:
    """Content-Encoding decoder whose output per call never exceeds what the caller has room for."""

    def __init__(self, encoding: str) -> None:
        self.identity = encoding in ("", "identity")
        self._encoding = encoding
        self._z: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = None  # zlib-wrapped or raw: decided on the first bytes
        elif not self.identity:
            raise _Problem("unsupported", f"unsupported content encoding {encoding!r}")

    def feed(self, data: bytes, room: int) -> tuple[bytes, bool]:
        """Decode ``data``; returns at most ``room`` bytes and whether more output was pending."""
        if self.identity:
            return data[:room], len(data) > room
        if self._z is None:
            zlib_wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._z = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        try:
            # max_length bounds the memory a bomb can take: one byte past the room is enough to know.
            out = self._z.decompress(data, room + 1)
        except zlib.error:
            raise _Problem("error", f"corrupt {self._encoding} body") from None
        if len(out) > room:
            return out[:room], True
        return out, False


def _kind_of(media: str) -> str | None:
    if media in _HTML_TYPES:
        return "html"
    if media in _MARKDOWN_TYPES:
        return "markdown"
    if media in _TEXT_TYPES:
        return "text"
    if media in _PDF_TYPES:
        return "pdf"
    if media in _SNIFF_TYPES:
        return "sniff"
    return None


def _sniff(body: bytes) -> str | None:
    head = body[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    low = head[:256].lower()
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    if b"\x00" in body[:8192]:
        return None
    try:
        body[:8192].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < 8188:  # not just a character cut at the sample's end
            return None
    return "text"


def _options_record(options: ConvertOptions) -> dict[str, bool]:
    return {"keep_links": options.keep_links, "include_images": options.include_images}


def _failed(url: str, status: SourceStatus, message: str) -> FetchedPage:
    return FetchedPage(url, url, status, _safe(message), None, None, "")


def _timeout_message(exc: httpx.TimeoutException) -> str:
    what = {
        httpx.ConnectTimeout: "connecting",
        httpx.ReadTimeout: "waiting for data",
        httpx.WriteTimeout: "sending the request",
        httpx.PoolTimeout: "waiting for a free connection",
    }.get(type(exc), "the request")
    return f"timed out {what}"


def _proxy_name(proxy: str) -> str:
    """The proxy's address without any credentials in it, for logs."""
    try:
        url = httpx.URL(proxy)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(invalid proxy URL)"
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


def _safe(message: str) -> str:
    return " ".join(message.split())[:_MESSAGE_MAX]
