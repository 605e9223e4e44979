"""SearXNG: a self-hosted, open-source metasearch instance, through its JSON search API. No key.

``GET {instance}/search?q=...&format=json`` answers only when the instance's ``settings.yml`` lists
``json`` under ``search.formats`` (``formats: [html, json]``); otherwise it answers 403, and the error
says so. Engines of the instance that failed (``unresponsive_engines``) become warnings on the hits,
not an error: the engines that answered still count. 429, 5xx and timeouts are retried with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import ConfigError, SearchError, SearchNotConfiguredError
from .search import SEARCH_HELP, SearchHit, SearchHits, TransientSearchError, with_retries

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

MISSING_URL_MESSAGE = "No SearXNG instance URL (ZI_ISAG_SEARXNG_URL), so SearXNG cannot search. " + SEARCH_HELP

JSON_DISABLED_MESSAGE = (
    "The SearXNG instance refused the JSON API (HTTP 403): its JSON format is off. Add json to "
    "search.formats in the instance's settings.yml (formats: [html, json]) and restart it."
)

TIME_RANGES = {"day": "day", "week": "week", "month": "month", "year": "year", "d": "day", "w": "week", "m": "month", "y": "year"}
"""SearXNG's time ranges; Tavily's one-letter forms map onto them, so one ``time_range`` serves both."""

MAX_RESPONSE_BYTES = 5_000_000
"""A results page is tens of kilobytes; a URL that points at something else must not fill memory."""


class SearXNGSearch:
    """Web search through a SearXNG instance's JSON API.

    Setup: run an instance with the JSON format on (README: "Search without a key"), then
    ``export ZI_ISAG_SEARCH=searxng ZI_ISAG_SEARXNG_URL=http://127.0.0.1:8888``.

    Usage::

        hits = await SearXNGSearch("http://127.0.0.1:8888", language="en").search("tide pools", max_results=5)
        hits.warnings  # e.g. ["SearXNG engines that did not answer: google (timeout)"]
    """

    name = "searxng"

    def __init__(
        self,
        base_url: str | None,
        *,
        language: str | None = None,
        time_range: str | None = None,
        categories: Sequence[str] = (),
        engines: Sequence[str] = (),
        safesearch: int | None = None,
        timeout: float = 15.0,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        user_agent: str | None = None,
        proxy: str | None = None,
    ) -> None:
        if not base_url or not base_url.strip():
            raise SearchNotConfiguredError(MISSING_URL_MESSAGE)
        base = base_url.strip().rstrip("/")
        self.endpoint = base if base.endswith("/search") else f"{base}/search"
        if time_range is not None and time_range.lower() not in TIME_RANGES:
            raise ConfigError(f"time_range {time_range!r} is not one SearXNG knows: use day, week, month or year")
        if safesearch is not None and safesearch not in (0, 1, 2):
            raise ConfigError(f"safesearch must be 0 (off), 1 (moderate) or 2 (strict), not {safesearch!r}")
        self.language = language
        self.time_range = TIME_RANGES[time_range.lower()] if time_range else None
        self.categories = tuple(categories)
        self.engines = tuple(engines)
        self.safesearch = safesearch
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.user_agent = user_agent
        self.proxy = proxy

    @classmethod
    def from_settings(cls, settings: Settings) -> SearXNGSearch:
        return cls(
            settings.searxng_url,
            language=settings.searxng_language,
            time_range=settings.time_range,
            categories=settings.searxng_categories,
            engines=settings.searxng_engines,
            safesearch=settings.searxng_safesearch,
            timeout=settings.searxng_timeout,
            user_agent=settings.user_agent,
            proxy=settings.api_proxy,
        )

    def __repr__(self) -> str:
        return f"SearXNGSearch({self.endpoint!r}, language={self.language!r}, engines={list(self.engines)!r})"

    def params(self, query: str) -> dict[str, str]:
        """The query string of one search request."""
        params = {"q": query, "format": "json", "pageno": "1"}
        if self.language:
            params["language"] = self.language
        if self.time_range:
            params["time_range"] = self.time_range
        if self.categories:
            params["categories"] = ",".join(self.categories)
        if self.engines:
            params["engines"] = ",".join(self.engines)
        if self.safesearch is not None:
            params["safesearch"] = str(self.safesearch)
        return params

    async def search(self, query: str, *, max_results: int) -> SearchHits:
        """Up to ``max_results`` hits in the instance's order; ``SearchError`` when it cannot answer."""
        payload = await with_retries(
            lambda: self._search_once(query),
            backend="SearXNG",
            max_retries=self.max_retries,
            backoff=self.retry_backoff,
        )
        return _hits(payload, max_results)

    async def _search_once(self, query: str) -> Any:
        headers = {"Accept": "application/json"}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        try:
            async with asyncio.timeout(self.timeout):
                # The environment's HTTP(S)_PROXY is never picked up silently; a proxy is ``api_proxy``.
                async with httpx.AsyncClient(
                    timeout=self.timeout, headers=headers, follow_redirects=True, max_redirects=3,
                    trust_env=False, proxy=self.proxy,
                ) as client:
                    async with client.stream("GET", self.endpoint, params=self.params(query)) as response:
                        self._check_status(response.status_code, response)
                        body = await _read_capped(response)
                        status = response.status_code
        except TimeoutError:
            raise TransientSearchError(f"The SearXNG instance did not answer within {self.timeout:g} s") from None
        except httpx.TimeoutException:
            raise TransientSearchError(f"The SearXNG instance did not answer within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise SearchError(
                f"Could not reach the SearXNG instance at ZI_ISAG_SEARXNG_URL ({type(exc).__name__}): "
                "is it running, and is the URL right?"
            ) from None
        if status >= 400:
            raise SearchError(f"The SearXNG instance answered HTTP {status}{_error_detail(body)}")
        try:
            return json.loads(body)
        except ValueError:
            raise SearchError(
                "The SearXNG instance sent an answer that is not valid JSON: check that ZI_ISAG_SEARXNG_URL "
                "is the address of a SearXNG instance"
            ) from None

    @staticmethod
    def _check_status(status: int, response: httpx.Response) -> None:
        if status == 403:
            raise SearchError(JSON_DISABLED_MESSAGE)
        if status == 429:
            raise TransientSearchError(
                "The SearXNG instance rate-limited the request (HTTP 429): its limiter (server.limiter in "
                "settings.yml) may be blocking this client"
            )
        if status >= 500:
            raise TransientSearchError(f"SearXNG server error (HTTP {status})")


async def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise SearchError(
                f"The SearXNG instance sent more than {MAX_RESPONSE_BYTES} bytes: check that "
                "ZI_ISAG_SEARXNG_URL is the address of a SearXNG instance"
            )
    return bytes(body)


def _error_detail(body: bytes) -> str:
    """SearXNG explains a 400 as ``{"error": "..."}``; anything else adds nothing."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {' '.join(str(error).split())[:200]}" if error else ""


def _hits(payload: Any, max_results: int) -> SearchHits:
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise SearchError("The SearXNG instance sent JSON of an unexpected shape (no results list)")
    hits: list[SearchHit] = []
    for item in payload["results"]:
        if len(hits) >= max_results:
            break
        hit = _hit(item)
        if hit is not None:
            hits.append(hit)
    warnings = []
    failed = _unresponsive(payload.get("unresponsive_engines"))
    if failed:
        warnings.append(f"SearXNG engines that did not answer: {', '.join(failed)}")
        logger.warning("%s", warnings[-1])
    return SearchHits(hits, warnings)


def _hit(item: Any) -> SearchHit | None:
    if not isinstance(item, dict):
        return None
    url = item.get("url")
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        return None  # answers without a page (or magnet:, data: links) have nothing to fetch
    engines = item.get("engines")
    if not isinstance(engines, list):
        engines = [item.get("engine")]
    score = item.get("score")
    content = item.get("content")
    published = item.get("publishedDate")
    return SearchHit(
        url=url,
        title=str(item.get("title") or ""),
        content=content if isinstance(content, str) and content else None,
        score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
        engines=tuple(e for e in engines if isinstance(e, str) and e),
        published=published if isinstance(published, str) and published else None,
    )


def _unresponsive(value: Any) -> list[str]:
    """``[[engine, reason], ...]`` -> ``["engine (reason)", ...]``; odd entries are kept as text."""
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for entry in value:
        if isinstance(entry, (list, tuple)) and entry:
            engine, reason = str(entry[0]), " ".join(str(x) for x in entry[1:] if x)
            out.append(f"{engine} ({reason})" if reason else engine)
        elif entry:
            out.append(str(entry))
    return out
