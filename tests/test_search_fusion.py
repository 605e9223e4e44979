"""Several search backends at once: reciprocal-rank fusion, de-duplication, and a failing backend.

Tavily and SearXNG run through their real clients against local servers speaking their documented
JSON; the hits point at the bundled example pages served on 127.0.0.1, which the pipeline fetches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.web.web_servers import LocalServer, SearXNGStub, TavilyStub, searxng_result

from evals.bench_adapters import PageServer
from zi_isag_tool.errors import MissingApiKeyError, SearchError
from zi_isag_tool.pipeline import Pipeline
from zi_isag_tool.settings import SEARCH_BACKEND_NAMES, Settings
from zi_isag_tool.web.backends import FACTORIES, build_backends
from zi_isag_tool.web.fusion import reciprocal_rank_fusion, url_key
from zi_isag_tool.web.search import SearchHit, SearchHits, TavilySearch
from zi_isag_tool.web.searxng import SearXNGSearch

KEY = "tvly-fusion-0123456789"
QUERY = "How efficient are heat pumps when it is very cold outside?"


# --- the fusion itself ---------------------------------------------------------------------------


def test_url_key_ignores_what_does_not_tell_pages_apart() -> None:
    same = [
        "https://example.com/a/b",
        "http://example.com/a/b/",
        "HTTPS://WWW.Example.COM:443/a/b#section",
        "https://example.com/a/b?utm_source=searx&utm_medium=x",
    ]
    assert len({url_key(u) for u in same}) == 1
    different = ["https://example.com/a/B", "https://example.com/a/b?page=2", "https://example.org/a/b"]
    assert len({url_key(u) for u in [same[0], *different]}) == 4
    assert url_key("not a url at all") == url_key("not a url at all")  # odd input never raises


def test_rrf_order_and_scores_match_hand_computed_values() -> None:
    tavily = [
        SearchHit("https://a.example/x", "A", raw_content="# A\n\nraw text", engines=("tavily",)),
        SearchHit("https://b.example/y", "B", engines=("tavily",)),
    ]
    searxng = [
        SearchHit("https://www.b.example/y/", "B (searxng)", content="snippet B", engines=("bing", "brave")),
        SearchHit("https://c.example/z", "C", engines=("duckduckgo",)),
        SearchHit("https://a.example/x#top", "A again", published="2026-11-02", engines=("wikipedia",)),
        SearchHit("https://c.example/z/", "C listed twice", engines=("duckduckgo",)),  # counts once
    ]
    fused = reciprocal_rank_fusion([tavily, searxng], k=60)
    # A: 1/(60+1) + 1/(60+3) = 0.0322660   B: 1/(60+2) + 1/(60+1) = 0.0325225   C: 1/(60+2) = 0.0161290
    assert [h.title for h in fused] == ["B", "A", "C"]
    assert [h.score for h in fused] == pytest.approx([1 / 62 + 1 / 61, 1 / 61 + 1 / 63, 1 / 62])
    b, a, c = fused
    assert b.url == "https://b.example/y" and b.content == "snippet B"  # first copy kept, gaps filled
    assert b.engines == ("tavily", "bing", "brave")
    assert a.raw_content == "# A\n\nraw text" and a.published == "2026-11-02"
    assert c.engines == ("duckduckgo",)
    # k changes the values, and with it the balance between one top rank and two middling ones.
    assert [h.score for h in reciprocal_rank_fusion([tavily, searxng], k=1)] == pytest.approx(
        [1 / 3 + 1 / 2, 1 / 2 + 1 / 4, 1 / 3]
    )
    # Equal scores: the better single rank first, then the earlier ranking.
    tie = reciprocal_rank_fusion([[SearchHit("https://p.example/")], [SearchHit("https://q.example/")]])
    assert [h.url for h in tie] == ["https://p.example/", "https://q.example/"]
    assert reciprocal_rank_fusion([]) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([tavily], k=0)


def test_every_backend_name_has_a_factory() -> None:
    assert set(FACTORIES) == set(SEARCH_BACKEND_NAMES)
    settings = Settings(search=" SearXNG ,tavily,searxng", searxng_url="http://127.0.0.1:9", tavily_api_key=KEY)  # type: ignore[call-arg]
    assert settings.search == "searxng,tavily"
    built = build_backends(settings)
    assert [(b.name, type(b.backend)) for b in built] == [("searxng", SearXNGSearch), ("tavily", TavilySearch)]
    with pytest.raises(ValueError, match="unknown search backend bing"):
        Settings(search="tavily,bing")  # type: ignore[call-arg]


# --- through the pipeline ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


def _servers(pages: PageServer, *, json_enabled: bool = True) -> tuple[TavilyStub, SearXNGStub]:
    sizing, cold, sourdough = (pages.url(n) for n in sorted(pages.files))
    tavily = TavilyStub(
        KEY,
        results=[
            {"title": "Sizing", "url": sizing, "content": "sizing", "raw_content": None, "score": 0.9},
            {"title": "Cold", "url": cold, "content": "cold", "raw_content": None, "score": 0.8},
        ],
    )
    searxng = SearXNGStub(
        [
            searxng_result(cold + "?utm_source=searxng", "Cold climates", ["bing"], 3.0),
            searxng_result(sourdough, "Sourdough", ["duckduckgo"], 2.0),
            searxng_result(sizing + "#top", "Sizing guide", ["brave"], 1.0),
        ],
        json_enabled=json_enabled,
    )
    return tavily, searxng


class _Both:
    """A Tavily stub and a SearXNG stub on two local servers, and settings naming both."""

    def __init__(self, pages: PageServer, *, json_enabled: bool = True) -> None:
        self.tavily, self.searxng = _servers(pages, json_enabled=json_enabled)
        self._tavily_server = LocalServer({"/search": self.tavily.route})
        self._searxng_server = LocalServer({"/search": self.searxng.route})

    def __enter__(self) -> _Both:
        self._tavily_server.__enter__()
        self._searxng_server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._tavily_server.__exit__(*exc)
        self._searxng_server.__exit__(*exc)

    def pipeline(self, **overrides: Any) -> Pipeline:
        values: dict[str, Any] = {
            "search": "tavily,searxng",
            "tavily_api_key": KEY,
            "tavily_base_url": self._tavily_server.url(""),
            "searxng_url": self._searxng_server.url(""),
            "allow_private_networks": True,
            "extractor": "lead",  # passages from every page: the search merge is under test
        }
        values.update(overrides)
        return Pipeline(Settings(**values))


async def test_two_backends_are_fused_deduplicated_and_cut_to_max_results(pages: PageServer) -> None:
    sizing, cold, sourdough = (pages.url(n) for n in sorted(pages.files))
    seen: list[tuple[str, int, int]] = []
    with _Both(pages) as both:
        result = await both.pipeline().arun(QUERY, max_results=3, progress=lambda *a: seen.append(a))  # type: ignore[arg-type,func-returns-value]
        # Hand-computed RRF (k=60): cold 1/62 + 1/61 > sizing 1/61 + 1/63 > sourdough 1/62.
        assert [s.source for s in result.sources] == [cold, sizing, sourdough]
        assert all(s.status == "ok" for s in result.sources) and result.warnings == []
        assert result.passages and all(p.source in (cold, sizing, sourdough) for p in result.passages)
        assert both.tavily.bodies[-1]["max_results"] == 3 and both.searxng.params[-1]["q"] == QUERY
        top2 = await both.pipeline().arun(QUERY, max_results=2)
        assert [s.source for s in top2.sources] == [cold, sizing]
    assert [s for s in seen if s[0] == "search"] == [("search", 0, 2), ("search", 1, 2), ("search", 2, 2)]


async def test_a_failing_backend_is_a_warning_and_the_other_serves(pages: PageServer) -> None:
    sizing, cold, sourdough = (pages.url(n) for n in sorted(pages.files))
    with _Both(pages) as both:
        result = await both.pipeline(tavily_api_key="tvly-wrong-key").arun(QUERY)
    # SearXNG's order and URLs, as it gave them.
    assert [s.source for s in result.sources] == [cold + "?utm_source=searxng", sourdough, sizing + "#top"]
    assert result.passages
    assert result.warnings == [
        "search backend tavily failed: Tavily rejected the API key (HTTP 401): check TAVILY_API_KEY or --tavily-api-key"
    ]
    assert result.to_dict()["warnings"] == result.warnings

    with _Both(pages, json_enabled=False) as both:
        result = await both.pipeline().arun(QUERY)
    assert [s.source for s in result.sources] == [sizing, cold]  # Tavily's order
    assert len(result.warnings) == 1 and "search backend searxng failed" in result.warnings[0]
    assert "formats: [html, json]" in result.warnings[0]


async def test_a_backend_without_its_key_is_a_warning(pages: PageServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    monkeypatch.delenv("ZI_ISAG_TAVILY_API_KEY", raising=False)
    with _Both(pages) as both:
        result = await both.pipeline(tavily_api_key=None).arun(QUERY, max_results=1)
        assert len(result.sources) == 1 and result.sources[0].status == "ok"
        assert result.warnings == ["search backend tavily is not configured: No Tavily API key, so Tavily cannot search"]
        # Alone, the backend's own error stands: the CLI and the MCP server explain it.
        with pytest.raises(MissingApiKeyError, match="ZI_ISAG_SEARXNG_URL"):
            await both.pipeline(search="tavily", tavily_api_key=None).arun(QUERY)


async def test_when_every_backend_fails_the_call_fails_with_each_reason(pages: PageServer) -> None:
    with _Both(pages, json_enabled=False) as both:
        with pytest.raises(SearchError) as info:
            await both.pipeline(tavily_api_key="tvly-wrong-key").arun(QUERY)
        text = str(info.value)
        assert "search backend tavily failed" in text and "search backend searxng failed" in text
        with pytest.raises(SearchError, match=r"HTTP 403.*formats: \[html, json\]"):
            await both.pipeline(search="searxng").arun(QUERY)  # a lone backend's own error


async def test_unresponsive_engines_and_empty_searches_are_reported(pages: PageServer) -> None:
    with _Both(pages) as both:
        partial = await both.pipeline(search="searxng").arun(QUERY + " unresponsive", max_results=1)
        assert len(partial.sources) == 1 and partial.passages
        assert partial.warnings == [
            "SearXNG engines that did not answer: bing (Suspended: CAPTCHA), google (timeout)"
        ]
        empty = await both.pipeline(search="searxng").arun("empty search")
        assert empty.sources == [] and empty.passages == []
        assert empty.warnings == ["The search found no results for this query."]


async def test_backends_are_queried_concurrently() -> None:
    """Each backend waits until the other has started: in sequence they would never finish."""
    started = {"first": asyncio.Event(), "second": asyncio.Event()}

    class Waiting:
        def __init__(self, name: str, other: str, url: str) -> None:
            self.name, self.other, self.url = name, other, url

        async def search(self, query: str, *, max_results: int) -> list[SearchHit]:
            started[self.name].set()
            await started[self.other].wait()
            return SearchHits([SearchHit(self.url)], [f"{self.name} ran"])

    pipeline = Pipeline(
        search=[Waiting("first", "second", "file-that-does-not-exist-1.txt"), Waiting("second", "first", "missing-2.txt")],
        extractor="bm25",
    )
    hits, warnings = await asyncio.wait_for(pipeline._searched(QUERY, 5, None), timeout=30)
    assert [h.url for h in hits] == ["file-that-does-not-exist-1.txt", "missing-2.txt"]
    assert warnings == ["first ran", "second ran"]
