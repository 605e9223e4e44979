"""The MCP tool without a paid key (SearXNG) and within a default token budget, through the in-memory client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.extractors import pinned_embedding
from fixtures.web.web_servers import LocalServer, SearXNGStub, searxng_result
from mcp import Client

from evals.bench_adapters import PageServer
from mcp_server.server import create_server, server_settings
from zi_isag_tool.cli import DEMO_QUERY
from zi_isag_tool.settings import Settings

pytestmark = pytest.mark.slow

EMBEDDED = pinned_embedding()


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


@pytest.fixture(scope="module")
def searxng_url(pages: PageServer) -> Iterator[str]:
    stub = SearXNGStub([searxng_result(url, url.rsplit("/", 1)[-1], ["duckduckgo"], 1.0) for url in pages.urls])
    with LocalServer({"/search": stub.route}) as server:
        yield server.url("")


def _server(**settings: Any) -> Any:
    return create_server(
        server_settings(Settings(allow_private_networks=True, extractor="embedding", **settings)), extractor=EMBEDDED
    )


async def test_default_budget_is_stated_applied_and_reported(pages: PageServer) -> None:
    async with Client(_server(tool_max_tokens=40)) as client:
        tool = (await client.list_tools()).tools[0]
        capped = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls})
        roomy = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls, "max_tokens": 5000})
    assert "capped at 40 tokens" in (tool.description or "")
    assert tool.output_schema is not None and {"passages_left_out", "warnings"} <= set(tool.output_schema["properties"])
    data = capped.structured_content
    assert not capped.is_error and data is not None
    assert 0 < data["tokens"]["kept"] <= 40 and data["passages_left_out"] >= 1
    assert "did not fit the token budget" in capped.content[0].text
    assert roomy.structured_content is not None and roomy.structured_content["passages_left_out"] == 0
    assert roomy.structured_content["tokens"]["kept"] > data["tokens"]["kept"]


async def test_the_server_default_budget_keeps_results_well_inside_agent_limits(pages: PageServer) -> None:
    async with Client(_server()) as client:
        tool = (await client.list_tools()).tools[0]
        result = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls})
    default = Settings.model_fields["tool_max_tokens"].default
    assert f"capped at {default} tokens" in (tool.description or "")
    assert result.structured_content is not None and result.structured_content["tokens"]["kept"] <= default


async def test_searches_a_searxng_instance_without_any_key(
    pages: PageServer, searxng_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    monkeypatch.delenv("ZI_ISAG_TAVILY_API_KEY", raising=False)
    async with Client(_server(search="searxng", searxng_url=searxng_url)) as client:
        found = await client.call_tool("web_extract", {"query": DEMO_QUERY, "max_results": 3})
        partial = await client.call_tool("web_extract", {"query": DEMO_QUERY + " unresponsive", "max_results": 1})
    assert not found.is_error and found.structured_content is not None
    assert [s["source"] for s in found.structured_content["sources"]] == pages.urls
    assert found.structured_content["passages"] and found.structured_content["warnings"] == []
    assert partial.structured_content is not None
    assert partial.structured_content["warnings"] == [
        "SearXNG engines that did not answer: bing (Suspended: CAPTCHA), google (timeout)"
    ]
    assert "google (timeout)" in partial.content[0].text


async def test_no_search_configured_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TAVILY_API_KEY", "ZI_ISAG_TAVILY_API_KEY", "ZI_ISAG_SEARXNG_URL"):
        monkeypatch.delenv(name, raising=False)
    async with Client(_server(search="tavily,searxng")) as client:
        result = await client.call_tool("web_extract", {"query": DEMO_QUERY})
    text = result.content[0].text
    assert result.is_error and "no Tavily API key, no SearXNG URL" in text and "urls=[...]" in text
