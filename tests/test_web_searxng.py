"""SearXNGSearch through its real HTTP client, against a local server speaking SearXNG's JSON API."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fixtures.web.web_servers import LocalServer, SearXNGStub

from zi_isag_tool.errors import ConfigError, SearchError, SearchNotConfiguredError
from zi_isag_tool.settings import Settings
from zi_isag_tool.web.search import SearchBackend, SearchHit, SearchHits
from zi_isag_tool.web.searxng import SearXNGSearch


@pytest.fixture(scope="module")
def searxng() -> Iterator[tuple[LocalServer, SearXNGStub]]:
    stub = SearXNGStub()
    with LocalServer({"/search": stub.route}) as server:
        yield server, stub


def _client(server: LocalServer, **kwargs: object) -> SearXNGSearch:
    options: dict[str, object] = {"retry_backoff": 0.01}
    options.update(kwargs)
    return SearXNGSearch(server.url(""), **options)  # type: ignore[arg-type]


async def test_results_become_hits_and_options_become_parameters(searxng: tuple[LocalServer, SearXNGStub]) -> None:
    server, stub = searxng
    search = _client(
        server,
        language="en-US",
        time_range="w",
        categories=["general", "news"],
        engines=["duckduckgo", "wikipedia"],
        safesearch=2,
    )
    assert isinstance(search, SearchBackend)
    hits = await search.search("tide pools", max_results=2)
    assert isinstance(hits, SearchHits) and hits.warnings == []
    # The answer box (no URL) and the magnet link (nothing to fetch) are skipped; the order is SearXNG's.
    assert hits == [
        SearchHit(
            url="https://example.com/tide-pools",
            title="Tide pools",
            content="Snippet of Tide pools.",
            score=4.5,
            engines=("duckduckgo", "wikipedia"),
            published="2026-11-02T00:00:00",
        ),
        SearchHit(
            url="https://example.org/rock-pools",
            title="Rock pools",
            content="Snippet of Rock pools.",
            score=2.0,
            engines=("bing",),
        ),
    ]
    assert stub.params[-1] == {
        "q": "tide pools",
        "format": "json",
        "pageno": "1",
        "language": "en-US",
        "time_range": "week",
        "categories": "general,news",
        "engines": "duckduckgo,wikipedia",
        "safesearch": "2",
    }
    assert len(await search.search("tide pools", max_results=10)) == 3


async def test_from_settings_and_instance_urls(searxng: tuple[LocalServer, SearXNGStub]) -> None:
    server, stub = searxng
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        searxng_url=server.url("/"),
        searxng_engines="duckduckgo, wikipedia",
        searxng_safesearch=0,
        time_range="month",
    )
    hits = await SearXNGSearch.from_settings(settings).search("from settings", max_results=1)
    assert [h.url for h in hits] == ["https://example.com/tide-pools"]
    params = stub.params[-1]
    assert (params["engines"], params["safesearch"], params["time_range"]) == ("duckduckgo,wikipedia", "0", "month")
    assert "language" not in params and "categories" not in params
    # The instance's address with or without /search, with or without a trailing slash.
    for base in (server.url(""), server.url("/"), server.url("/search")):
        assert SearXNGSearch(base).endpoint == server.url("/search")


async def test_json_format_off_says_how_to_turn_it_on() -> None:
    stub = SearXNGStub(json_enabled=False)
    with LocalServer({"/search": stub.route}) as server:
        with pytest.raises(SearchError) as info:
            await _client(server).search("anything", max_results=3)
    text = str(info.value)
    assert "HTTP 403" in text and "settings.yml" in text and "formats: [html, json]" in text
    assert stub.calls["anything"] == 1  # not retried: it will not change by itself


@pytest.mark.parametrize(
    ("query", "message", "attempts"),
    [
        ("rate-limited", "rate-limited the request (HTTP 429)", 3),
        ("server-error", "SearXNG server error (HTTP 500) (gave up after 3 attempts)", 3),
        ("bad-request", 'answered HTTP 400: Invalid value "yesterday" for parameter time_range', 1),
        ("malformed", "not valid JSON", 1),
        ("not-searxng", "is the address of a SearXNG instance", 1),
        ("wrong-shape", "unexpected shape (no results list)", 1),
        ("huge", "more than 5000000 bytes", 1),
    ],
)
async def test_errors_are_clear_and_retried_only_when_worth_it(
    searxng: tuple[LocalServer, SearXNGStub], query: str, message: str, attempts: int
) -> None:
    server, stub = searxng
    before = stub.calls.get(query, 0)
    with pytest.raises(SearchError) as info:
        await _client(server, max_retries=2).search(query, max_results=3)
    assert message in str(info.value)
    assert stub.calls[query] - before == attempts
    assert server.url("") not in str(info.value)  # the instance's address stays out of messages


@pytest.mark.parametrize("query", ["rate-limited-once", "server-error-once"])
async def test_transient_errors_are_retried(searxng: tuple[LocalServer, SearXNGStub], query: str) -> None:
    server, stub = searxng
    hits = await _client(server).search(query, max_results=5)
    assert len(hits) == 3 and stub.calls[query] == 2


async def test_timeout_is_retried_then_reported(searxng: tuple[LocalServer, SearXNGStub]) -> None:
    server, stub = searxng
    with pytest.raises(SearchError, match=r"did not answer within 0.3 s \(gave up after 2 attempts\)"):
        await _client(server, timeout=0.3, max_retries=1).search("slow", max_results=2)
    assert stub.calls["slow"] == 2


async def test_empty_results_and_unresponsive_engines_are_not_errors(
    searxng: tuple[LocalServer, SearXNGStub],
) -> None:
    server, _ = searxng
    search = _client(server)
    empty = await search.search("empty", max_results=5)
    assert empty == [] and empty.warnings == []
    partial = await search.search("unresponsive engines", max_results=5)
    assert len(partial) == 3
    assert partial.warnings == ["SearXNG engines that did not answer: bing (Suspended: CAPTCHA), google (timeout)"]
    nothing = await search.search("empty, unresponsive", max_results=5)
    assert nothing == [] and "google (timeout)" in nothing.warnings[0]


async def test_unreachable_instance_is_a_search_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SearchError, match="Could not reach the SearXNG instance at ZI_ISAG_SEARXNG_URL"):
        await SearXNGSearch(f"http://127.0.0.1:{port}", retry_backoff=0.01).search("q", max_results=1)


def test_missing_url_names_every_way_to_search() -> None:
    for make in (lambda: SearXNGSearch(None), lambda: SearXNGSearch.from_settings(Settings(_env_file=None))):  # type: ignore[call-arg]
        with pytest.raises(SearchNotConfiguredError) as info:
            make()
        text = str(info.value)
        for needle in ("ZI_ISAG_SEARXNG_URL", "ZI_ISAG_SEARCH=searxng", "--searxng-url", "TAVILY_API_KEY", "--source", "urls=[...]"):
            assert needle in text


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="day, week, month or year"):
        SearXNGSearch("http://127.0.0.1:8888", time_range="fortnight")
    with pytest.raises(ConfigError, match="safesearch"):
        SearXNGSearch("http://127.0.0.1:8888", safesearch=3)
    with pytest.raises(ValueError, match="http"):
        Settings(searxng_url="127.0.0.1:8888")  # type: ignore[call-arg]


async def test_environment_proxies_are_ignored_and_an_explicit_one_is_used(
    searxng: tuple[LocalServer, SearXNGStub], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)  # a proxy that is not there: using it would fail the search
    server, stub = searxng
    assert await SearXNGSearch(server.url("")).search("anything", max_results=5)
    # api_proxy: a forward proxy on 127.0.0.1 receives the request (absolute URI) and answers it.
    with LocalServer({"http://searx.test/search": stub.route}) as proxy:
        settings = Settings(_env_file=None, searxng_url="http://searx.test", api_proxy=proxy.url(""))  # type: ignore[call-arg]
        found = await SearXNGSearch.from_settings(settings).search("through a proxy", max_results=5)
    assert found and [path.split("?")[0] for _, path, _ in proxy.requests] == ["http://searx.test/search"]
