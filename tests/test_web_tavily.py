"""TavilySearch through the real tavily-python client, pointed at a local Tavily-compatible server."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from fixtures.web.web_servers import LocalServer, TavilyStub

from zi_isag_tool.errors import MissingApiKeyError, SearchError
from zi_isag_tool.settings import Settings
from zi_isag_tool.web.search import SearchBackend, SearchHit, TavilySearch

KEY = "tvly-test-0123456789secret"


@pytest.fixture(scope="module")
def tavily() -> Iterator[tuple[LocalServer, TavilyStub]]:
    stub = TavilyStub(KEY)
    with LocalServer({"/search": stub.route}) as server:
        yield server, stub


def _client(server: LocalServer, **kwargs: object) -> TavilySearch:
    options: dict[str, object] = {"base_url": server.url(""), "retry_backoff": 0.01}
    options.update(kwargs)
    return TavilySearch(KEY, **options)  # type: ignore[arg-type]


async def test_results_with_and_without_raw_content(tavily: tuple[LocalServer, TavilyStub]) -> None:
    server, stub = tavily
    search = _client(
        server,
        search_depth="advanced",
        topic="news",
        time_range="week",
        include_domains=["example.com", "example.org"],
        exclude_domains=["spam.example"],
    )
    assert isinstance(search, SearchBackend)
    hits = await search.search("tide pools", max_results=7)
    assert hits == [
        SearchHit(
            url="https://example.com/raw",
            title="With raw content",
            content="A short snippet.",
            raw_content="# Raw page\n\nThe full page text from Tavily.",
            score=0.91,
            engines=("tavily",),
        ),
        SearchHit(
            url="https://example.org/plain",
            title="Without raw content",
            content="Another snippet.",
            raw_content=None,
            score=0.5,
            engines=("tavily",),
            published="Sun, 30 Nov 2026 08:00:00 GMT",
        ),
    ]
    body = stub.bodies[-1]
    assert body["query"] == "tide pools"
    assert body["max_results"] == 7
    assert (body["search_depth"], body["topic"], body["time_range"]) == ("advanced", "news", "week")
    assert body["include_domains"] == ["example.com", "example.org"]
    assert body["exclude_domains"] == ["spam.example"]
    assert body["include_raw_content"] == "markdown"


async def test_from_settings_passes_options(tavily: tuple[LocalServer, TavilyStub]) -> None:
    server, stub = tavily
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        tavily_api_key=KEY,
        tavily_base_url=server.url(""),
        topic="finance",
        exclude_domains=["x.com"],
    )
    hits = await TavilySearch.from_settings(settings).search("settings", max_results=3)
    assert [h.url for h in hits] == ["https://example.com/raw", "https://example.org/plain"]
    body = stub.bodies[-1]
    assert (body["topic"], body["exclude_domains"], body["max_results"]) == ("finance", ["x.com"], 3)
    assert "time_range" not in body and "include_domains" not in body


@pytest.mark.parametrize(
    ("query", "message", "attempts"),
    [
        ("bad-key", "Tavily rejected the API key (HTTP 401)", 1),
        ("plan-limit", "plan or usage limit is exhausted", 1),
        ("paygo-limit", "plan or usage limit is exhausted", 1),
        ("bad-request", "Tavily rejected the request as invalid (HTTP 400): Query is invalid.", 1),
        ("rate-limited", "Tavily rate limit reached (HTTP 429)", 3),
        ("server-error", "Tavily server error (HTTP 503) (gave up after 3 attempts)", 3),
    ],
)
async def test_errors_map_to_clear_messages_and_retry_only_when_worth_it(
    tavily: tuple[LocalServer, TavilyStub], query: str, message: str, attempts: int
) -> None:
    server, stub = tavily
    key = "tvly-wrong-key" if query == "bad-key" else KEY
    search = TavilySearch(key, base_url=server.url(""), retry_backoff=0.01, max_retries=2)
    before = stub.calls.get(query, 0)
    with pytest.raises(SearchError) as info:
        await search.search(query, max_results=3)
    assert message in str(info.value)
    assert stub.calls[query] - before == attempts
    assert key not in str(info.value)


@pytest.mark.parametrize("query", ["rate-limited-once", "server-error-once"])
async def test_transient_errors_are_retried(tavily: tuple[LocalServer, TavilyStub], query: str) -> None:
    server, stub = tavily
    hits = await _client(server).search(query, max_results=2)
    assert len(hits) == 2 and stub.calls[query] == 2


async def test_timeout_is_retried_then_reported(tavily: tuple[LocalServer, TavilyStub]) -> None:
    server, stub = tavily
    search = _client(server, timeout=0.3, max_retries=1)
    with pytest.raises(SearchError, match=r"did not answer within 0.3 s \(gave up after 2 attempts\)"):
        await search.search("slow", max_results=2)
    assert stub.calls["slow"] == 2


async def test_unreachable_server_is_a_search_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    search = TavilySearch(KEY, base_url=f"http://127.0.0.1:{port}", retry_backoff=0.01)
    with pytest.raises(SearchError, match=f"could not reach Tavily at http://127.0.0.1:{port}"):
        await search.search("q", max_results=1)


async def test_key_never_shown(
    tavily: tuple[LocalServer, TavilyStub], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = tavily
    caplog.set_level(logging.DEBUG)
    search = _client(server)
    assert KEY not in repr(search) and "**********" in repr(search)
    with pytest.raises(SearchError) as info:
        await search.search("echo-key", max_results=1)  # the server puts the key in its error detail
    assert "***" in str(info.value) and KEY not in str(info.value)
    await search.search("rate-limited-once-more", max_results=1)
    assert KEY not in caplog.text


def test_missing_key_says_how_to_provide_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    monkeypatch.delenv("ZI_ISAG_TAVILY_API_KEY", raising=False)
    for make in (lambda: TavilySearch(), lambda: TavilySearch.from_settings(Settings(_env_file=None))):  # type: ignore[call-arg]
        with pytest.raises(MissingApiKeyError) as info:
            make()
        text = str(info.value)
        for needle in ("TAVILY_API_KEY", "--tavily-api-key", "tavily_api_key=", "--source"):
            assert needle in text
    monkeypatch.setenv("TAVILY_API_KEY", KEY)
    assert KEY not in repr(TavilySearch())


async def test_environment_proxies_are_ignored_and_an_explicit_one_is_used(
    tavily: tuple[LocalServer, TavilyStub], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "TAVILY_HTTP_PROXY", "TAVILY_HTTPS_PROXY"):
        monkeypatch.setenv(name, dead)  # a proxy that is not there: using it would fail the search
    server, stub = tavily
    assert (await _client(server).search("anything", max_results=5))[0].title == "With raw content"
    # api_proxy: a forward proxy on 127.0.0.1 receives the request (absolute URI) and answers it.
    with LocalServer({"http://tavily.test/search": stub.route}) as proxy:
        settings = Settings(_env_file=None, tavily_api_key=KEY, tavily_base_url="http://tavily.test", api_proxy=proxy.url(""))  # type: ignore[call-arg]
        hits = await TavilySearch.from_settings(settings).search("through a proxy", max_results=5)
    assert hits[0].title == "With raw content"
    assert [path for _, path, _ in proxy.requests] == ["http://tavily.test/search"]
