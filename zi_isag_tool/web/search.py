"""Search backends: the ``SearchBackend`` protocol and Tavily through the real ``tavily-python`` client.

The API key is a ``SecretStr``: it never appears in ``repr``, logs or error messages. Failures become
``SearchError`` with a message that says what to do; 429, 5xx and timeouts are retried with backoff.
SearXNG lives in ``searxng.py``; ``backends.py`` builds the backends named in settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import SecretStr

from ..errors import MissingApiKeyError, SearchError

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

SEARCH_HELP = (
    "Ways to search: a Tavily API key (export TAVILY_API_KEY=tvly-..., the --tavily-api-key option of "
    "the CLI, or tavily_api_key=... in Python); or a SearXNG instance you run yourself, no key needed "
    "(export ZI_ISAG_SEARCH=searxng ZI_ISAG_SEARXNG_URL=http://127.0.0.1:8888, the CLI's --search searxng "
    "--searxng-url URL, or search='searxng', searxng_url=... in Python; the README shows a two-line "
    "instance); or skip the search by passing sources yourself (--source URL_OR_PATH on the CLI, "
    "urls=[...] in the MCP and LangChain tools, sources=[...] in Python)."
)

MISSING_KEY_MESSAGE = "No Tavily API key, so Tavily cannot search. " + SEARCH_HELP


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result. ``raw_content``, when given, is the page text: no fetch needed."""

    url: str
    title: str = ""
    content: str | None = None
    raw_content: str | None = None
    score: float | None = None
    engines: tuple[str, ...] = ()
    """Where the result came from: the backend, or for a metasearch instance its engines."""
    published: str | None = None
    """Publication date as the backend gave it (ISO 8601 for SearXNG), when known."""


class SearchHits(list[SearchHit]):
    """A backend's ranked hits (best first), plus problems it met that did not stop it.

    ``warnings`` are short and safe to show (e.g. a metasearch instance's engines that did not answer);
    a backend that only returns a plain ``list[SearchHit]`` simply has none.
    """

    def __init__(self, hits: Iterable[SearchHit] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(hits)
        self.warnings = list(warnings)


@runtime_checkable
class SearchBackend(Protocol):
    """Ranked hits for a query, best first; raises ``SearchError`` with an actionable message."""

    async def search(self, query: str, *, max_results: int) -> list[SearchHit]: ...


class TransientSearchError(Exception):
    """A failure worth retrying (rate limit, server error, timeout); ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def with_retries(
    call: Callable[[], Awaitable[T]], *, backend: str, max_retries: int, backoff: float
) -> T:
    """``call()``, retried with exponential backoff while it raises ``TransientSearchError``;
    then a ``SearchError`` that says how many attempts were made."""
    attempt = 0
    while True:
        try:
            return await call()
        except TransientSearchError as exc:
            if attempt >= max_retries:
                raise SearchError(f"{exc.message} (gave up after {attempt + 1} attempts)") from None
            delay = backoff * (2**attempt)
            logger.info("%s: %s; retrying in %.2f s", backend, exc.message, delay)
            attempt += 1
            await asyncio.sleep(delay)


class TavilySearch:
    """Tavily web search (``AsyncTavilyClient``).

    Setup: ``export TAVILY_API_KEY=tvly-...`` (or pass ``api_key``).

    Usage::

        hits = await TavilySearch.from_settings(Settings()).search("who won", max_results=5)
    """

    name = "tavily"

    def __init__(
        self,
        api_key: SecretStr | str | None = None,
        *,
        base_url: str | None = None,
        search_depth: str = "basic",
        topic: str = "general",
        time_range: str | None = None,
        include_domains: Sequence[str] = (),
        exclude_domains: Sequence[str] = (),
        include_raw_content: bool | str = "markdown",
        timeout: float = 30,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        proxy: str | None = None,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get("TAVILY_API_KEY") or None
        if isinstance(api_key, str):
            api_key = SecretStr(api_key.strip())
        if api_key is None or not api_key.get_secret_value():
            raise MissingApiKeyError(MISSING_KEY_MESSAGE)
        self._api_key = api_key
        self.base_url = base_url
        self.search_depth = search_depth
        self.topic = topic
        self.time_range = time_range
        self.include_domains = tuple(include_domains)
        self.exclude_domains = tuple(exclude_domains)
        self.include_raw_content = include_raw_content
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.proxy = proxy

    @classmethod
    def from_settings(cls, settings: Settings) -> TavilySearch:
        return cls(
            settings.tavily_api_key,
            base_url=settings.tavily_base_url,
            search_depth=settings.search_depth,
            topic=settings.topic,
            time_range=settings.time_range,
            include_domains=settings.include_domains,
            exclude_domains=settings.exclude_domains,
            proxy=settings.api_proxy,
        )

    def __repr__(self) -> str:
        return (
            f"TavilySearch(api_key={self._api_key!r}, base_url={self.base_url!r}, "
            f"search_depth={self.search_depth!r}, topic={self.topic!r})"
        )

    async def search(self, query: str, *, max_results: int) -> list[SearchHit]:
        """Search; raises ``SearchError`` with an actionable message when Tavily cannot answer."""
        response = await with_retries(
            lambda: self._search_once(query, max_results),
            backend="Tavily",
            max_retries=self.max_retries,
            backoff=self.retry_backoff,
        )
        return _hits(response)

    async def _search_once(self, query: str, max_results: int) -> dict[str, Any]:
        from tavily import AsyncTavilyClient
        from tavily import errors as tavily_errors

        kwargs: dict[str, Any] = {
            "search_depth": self.search_depth,
            "topic": self.topic,
            "max_results": max_results,
            "include_raw_content": self.include_raw_content,
            "timeout": self.timeout,
        }
        if self.time_range:
            kwargs["time_range"] = self.time_range
        if self.include_domains:
            kwargs["include_domains"] = list(self.include_domains)
        if self.exclude_domains:
            kwargs["exclude_domains"] = list(self.exclude_domains)

        where = self.base_url or "api.tavily.com"
        # Our own HTTP client: the environment's HTTP(S)_PROXY (or TAVILY_*_PROXY) is never picked up
        # silently; a proxy is the explicit ``api_proxy`` setting.
        http = httpx.AsyncClient(
            base_url=self.base_url or "https://api.tavily.com", trust_env=False, proxy=self.proxy
        )
        try:
            async with http, AsyncTavilyClient(api_key=self._api_key.get_secret_value(), client=http) as client:
                return await client.search(query, **kwargs)
        except tavily_errors.InvalidAPIKeyError:
            raise SearchError(
                "Tavily rejected the API key (HTTP 401): check TAVILY_API_KEY or --tavily-api-key"
            ) from None
        except tavily_errors.UsageLimitExceededError as exc:
            raise TransientSearchError(f"Tavily rate limit reached (HTTP 429){self._detail(exc)}") from None
        except tavily_errors.ForbiddenError as exc:
            raise SearchError(
                "Tavily refused the request: the key's plan or usage limit is exhausted or the key may not "
                f"use this endpoint (HTTP 403/432/433){self._detail(exc)}; check your Tavily account"
            ) from None
        except tavily_errors.BadRequestError as exc:
            raise SearchError(
                f"Tavily rejected the request as invalid (HTTP 400){self._detail(exc)}"
            ) from None
        except tavily_errors.TimeoutError:
            raise TransientSearchError(f"Tavily did not answer within {self.timeout:g} s") from None
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            if code >= 500:
                raise TransientSearchError(f"Tavily server error (HTTP {code})") from None
            raise SearchError(f"Tavily answered HTTP {code}") from None
        except httpx.TimeoutException:
            raise TransientSearchError(f"Tavily did not answer within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise SearchError(f"could not reach Tavily at {where} ({type(exc).__name__})") from None
        except ValueError:  # a 200 whose body is not JSON
            raise SearchError("Tavily sent an answer that is not valid JSON") from None

    def _detail(self, exc: Exception) -> str:
        detail = " ".join(str(exc).split())[:200]
        secret = self._api_key.get_secret_value()
        if secret and secret in detail:
            detail = detail.replace(secret, "***")
        return f": {detail}" if detail else ""


def _hits(response: Any) -> list[SearchHit]:
    if not isinstance(response, dict):
        raise SearchError("Tavily sent an answer of an unexpected shape")
    hits: list[SearchHit] = []
    for item in response.get("results") or []:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"]:
            continue
        score = item.get("score")
        raw = item.get("raw_content")
        content = item.get("content")
        published = item.get("published_date")  # topic="news" only
        hits.append(
            SearchHit(
                url=item["url"],
                title=str(item.get("title") or ""),
                content=content if isinstance(content, str) else None,
                raw_content=raw if isinstance(raw, str) and raw.strip() else None,
                score=float(score) if isinstance(score, (int, float)) else None,
                engines=("tavily",),
                published=published if isinstance(published, str) and published else None,
            )
        )
    return hits
