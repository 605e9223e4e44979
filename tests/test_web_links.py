"""Outgoing links through fetch, cache and pipeline: words in the text, targets in the metadata."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.web.web_servers import LocalServer, html_page, static

from zi_isag_tool import Link, Pipeline
from zi_isag_tool.settings import Settings
from zi_isag_tool.web.fetch import Fetcher

BODY = (
    "<article><h1>Heat pumps in cold climates</h1>"
    "<p>Modern cold-climate heat pumps keep a coefficient of performance above two at minus fifteen degrees, "
    "as <a href='/field-test'>a two-winter field test</a> and <a href='https://energy.example/report' "
    "title='Agency report'>the agency's report</a> both found.</p>"
    "<p>Installers size them for the coldest week of the year and add a backup heater only where the "
    "winter design temperature falls below minus twenty degrees, which is rare in most of the country.</p>"
    "</article>"
)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    routes = {"/heat-pumps/cold": static(html_page("Cold-climate heat pumps", BODY).encode(), "text/html; charset=utf-8")}
    with LocalServer(routes) as srv:  # type: ignore[arg-type]
        yield srv


def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, allow_private_networks=True, extractor="bm25", **overrides)  # type: ignore[arg-type, call-arg]


def _expected(server: LocalServer) -> tuple[Link, ...]:
    return (
        Link(server.url("/field-test"), "a two-winter field test"),
        Link("https://energy.example/report", "the agency's report"),
    )


async def test_fetched_page_keeps_link_words_in_text_and_links_aside(server: LocalServer) -> None:
    async with Fetcher(_settings()) as fetcher:
        page = await fetcher.fetch(server.url("/heat-pumps/cold"))
    assert page.status == "ok" and page.text is not None
    assert "as a two-winter field test and the agency's report both found." in page.text
    assert "http" not in page.text and "Agency report" not in page.text
    assert page.links == _expected(server)


async def test_keep_links_setting_and_the_cache_keep_apart(server: LocalServer, tmp_path: Path) -> None:
    path = "/heat-pumps/cold"
    plain = _settings(cache_dir=tmp_path / "cache")
    markdown = _settings(cache_dir=tmp_path / "cache", keep_links=True)
    before = server.hits(path)
    async with Fetcher(plain) as fetcher:
        first = await fetcher.fetch(server.url(path))
    async with Fetcher(plain) as fetcher:
        cached = await fetcher.fetch(server.url(path))
    assert cached.from_cache and (cached.text, cached.links) == (first.text, first.links) == (cached.text, _expected(server))
    async with Fetcher(markdown) as fetcher:
        linked = await fetcher.fetch(server.url(path))
    # Converted another way: fetched again, not served the plain text from the cache.
    assert not linked.from_cache and server.hits(path) == before + 2
    assert linked.text is not None and f"[a two-winter field test]({server.url('/field-test')})" in linked.text
    assert linked.links == first.links


def test_pipeline_result_carries_each_sources_links_not_its_passages(server: LocalServer) -> None:
    url = server.url("/heat-pumps/cold")
    result = Pipeline(_settings()).run("Do heat pumps work at minus fifteen degrees?", [url])
    assert result.passages and all("http" not in p.text for p in result.passages)
    assert result.links == {url: _expected(server)}
    assert "links" not in result.to_dict()["sources"][0]
