"""The MCP server through the SDK's in-memory client: schemas, results, progress, errors, cancellation.

The example pages are served from a local HTTP server on 127.0.0.1 (the server's settings allow
private networks); the extractor is the embedded model, loaded once and shared by every server here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fixtures.web.web_servers import LocalServer, send
from mcp import Client

from evals.bench_adapters import PageServer
from evals.local_servers import free_port
from mcp_server.server import create_server, server_settings
from zi_isag_tool.cli import DEMO_QUERY
from zi_isag_tool.extractors.embedding import EmbeddingExtractor
from zi_isag_tool.extractors.openai_compat import OpenAIExtractor
from zi_isag_tool.extractors.selection import SelectionRule
from zi_isag_tool.settings import Settings

pytestmark = pytest.mark.slow

RESULT_KEYS = {"query", "passages", "sources", "tokens", "passages_left_out", "windows", "failed_windows", "dropped_tags", "warnings"}



def pinned_embedding() -> EmbeddingExtractor:
    """The embedded MiniLM extractor with fixed selection thresholds (these tests check the adapter,
    not the calibration of the default rule); the model itself is loaded once per process."""
    return EmbeddingExtractor(rule=SelectionRule(floor=0.3, min_score=0.2, budget=8, per_document=5))


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


@pytest.fixture(scope="module")
def settings() -> Settings:
    return server_settings(Settings(allow_private_networks=True, extractor="embedding"))


@pytest.fixture(scope="module")
def extractor() -> Any:
    return pinned_embedding()


@pytest.fixture
def server(settings: Settings, extractor: Any) -> Any:
    return create_server(settings, extractor=extractor)


async def test_tool_listing_schemas_and_annotations(server: Any) -> None:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    assert [t.name for t in tools] == ["web_extract"]
    tool = tools[0]
    props = tool.input_schema["properties"]
    assert tool.input_schema["required"] == ["query"]
    assert set(props) == {"query", "urls", "max_results", "max_tokens"}
    assert props["query"]["minLength"] == 1 and props["query"]["maxLength"] == 4000
    assert props["max_results"] == {**props["max_results"], "minimum": 1, "maximum": 20, "default": 5}
    urls = next(a for a in props["urls"]["anyOf"] if a.get("type") == "array")
    assert urls["maxItems"] == 20
    assert all(p.get("description") for p in props.values())
    out = tool.output_schema
    assert out is not None and set(out["required"]) == {"query", "passages", "sources", "tokens", "windows", "failed_windows", "dropped_tags", "warnings"}
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is True and tool.annotations.open_world_hint is True
    assert tool.annotations.destructive_hint is False


async def test_call_returns_structured_passages_text_and_progress(server: Any, pages: PageServer) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(server) as client:
        result = await client.call_tool(
            "web_extract", {"query": DEMO_QUERY, "urls": pages.urls}, progress_callback=on_progress
        )
    assert not result.is_error
    data = result.structured_content
    assert data is not None and set(data) == RESULT_KEYS
    assert data["query"] == DEMO_QUERY
    assert [s["status"] for s in data["sources"]] == ["ok"] * 3
    assert data["passages"] and all(set(p) == {"source", "title", "tags", "start", "end", "text"} for p in data["passages"])
    assert not any("sourdough" in p["source"] for p in data["passages"])
    assert 0 < data["tokens"]["kept"] < data["tokens"]["content"]
    text = result.content[0].text
    assert data["passages"][0]["text"].splitlines()[0] in text and "tokens (" in text
    # Progress: strictly increasing, over fetch n/N and extract n/N.
    values = [u[0] for u in updates]
    assert values == sorted(set(values)) and all(u[1] == 3.0 for u in updates)
    messages = [u[2] or "" for u in updates]
    assert any(m.startswith("fetch 3/3") for m in messages) and messages[-1].startswith("extract ")


async def test_partial_failure_is_reported_in_sources(server: Any, pages: PageServer) -> None:
    async with Client(server) as client:
        result = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": [*pages.urls, pages.url("missing")]})
    assert not result.is_error
    statuses = {s["source"]: s for s in result.structured_content["sources"]}
    assert statuses[pages.url("missing")]["status"] == "http_error"
    assert result.structured_content["passages"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"query": DEMO_QUERY, "max_results": 0}, "max_results"),
        ({"query": DEMO_QUERY, "urls": ["u"] * 21}, "urls"),
        ({"query": ""}, "query"),
        ({"query": DEMO_QUERY, "urls": ["file:///etc/passwd"]}, "http(s) URL"),
        ({"query": DEMO_QUERY, "urls": ["/etc/passwd"]}, "http(s) URL"),
        ({"query": "   ", "urls": ["https://example.org/"]}, "query is empty"),
    ],
)
async def test_bad_arguments_are_tool_errors_the_model_can_read(server: Any, arguments: dict, expected: str) -> None:
    async with Client(server) as client:
        result = await client.call_tool("web_extract", arguments)
    assert result.is_error
    assert expected in result.content[0].text
    assert "Traceback" not in result.content[0].text


async def test_total_failure_is_an_error_with_a_safe_message(server: Any, pages: PageServer) -> None:
    async with Client(server) as client:
        result = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": [pages.url("missing")]})
    assert result.is_error
    text = result.content[0].text
    assert "None of the 1 pages could be read" in text and "http_error" in text and "Traceback" not in text


async def test_search_failures_hide_secrets_and_addresses(
    extractor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    monkeypatch.delenv("ZI_ISAG_TAVILY_API_KEY", raising=False)
    async with Client(create_server(server_settings(Settings(extractor="embedding")), extractor=extractor)) as c:
        no_key = await c.call_tool("web_extract", {"query": DEMO_QUERY})
    assert no_key.is_error and "urls=[...]" in no_key.content[0].text

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: Tavily is unreachable
    broken = server_settings(Settings(extractor="embedding", tavily_api_key="tvly-secret-789", tavily_base_url=dead))
    async with Client(create_server(broken, extractor=extractor)) as c:
        failed = await c.call_tool("web_extract", {"query": DEMO_QUERY})
    text = failed.content[0].text
    assert failed.is_error and "search failed" in text
    assert "tvly-secret-789" not in text and "127.0.0.1" not in text and "Traceback" not in text


def test_server_never_reads_local_files_unless_allowed(tmp_path: Any) -> None:
    assert server_settings(Settings(allow_local_files=True)).allow_local_files is False
    allowed = server_settings(Settings(), [str(tmp_path)])
    assert allowed.allow_local_files is True and allowed.local_roots == [tmp_path]


async def test_allowed_directory_is_readable_and_nothing_else(settings: Settings, extractor: Any, tmp_path: Any) -> None:
    page = tmp_path / "notes.md"
    page.write_text("# Heat pumps\n\nA cold-climate heat pump keeps a COP above 2 at -15 °C.\n", encoding="utf-8")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.md"
    outside.write_text("# Secret\n\nNot for the model.\n", encoding="utf-8")
    local = server_settings(settings, [str(tmp_path)])
    async with Client(create_server(local, extractor=extractor)) as client:
        result = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": [str(page), str(outside)]})
    statuses = [s["status"] for s in result.structured_content["sources"]]
    assert statuses == ["ok", "blocked"]
    assert "Secret" not in json.dumps(result.structured_content)


async def test_cancelled_call_stops_fetching_and_leaks_no_tasks(server: Any, pages: PageServer) -> None:
    pages.slow_started.clear()
    pages.slow_disconnected.clear()
    async with Client(server) as client:
        before = asyncio.all_tasks()
        call = asyncio.create_task(client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": [pages.url("slow")]}))
        assert await asyncio.to_thread(pages.slow_started.wait, 20)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        # The fetch was stopped and its socket closed: the page server sees the hang-up.
        assert await asyncio.to_thread(pages.slow_disconnected.wait, 10)
        await asyncio.sleep(0.2)
        assert not {t for t in asyncio.all_tasks() - before if not t.done()} - {asyncio.current_task()}
        # The server still answers after a cancelled call.
        again = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls[:1]})
        assert not again.is_error


def _empty_answers(handler: Any) -> None:
    handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    send(handler, 200, json.dumps({"choices": [{"message": {"content": ""}}]}).encode(), "application/json")


async def test_every_window_failing_is_an_error_with_failed_windows(settings: Settings, pages: PageServer) -> None:
    with LocalServer({"/v1/chat/completions": _empty_answers}) as endpoint:
        failing = OpenAIExtractor(endpoint.url("/v1"), "m", max_retries=0)
        async with Client(create_server(settings, extractor=failing)) as client:
            result = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls})
    assert result.is_error
    text = result.content[0].text
    assert "Extraction failed for all" in text and "empty answer" in text and "No relevant passage" not in text
    data = result.structured_content
    assert data is not None and data["windows"] >= 3 and data["failed_windows"] == data["windows"]
    assert [s["status"] for s in data["sources"]] == ["ok"] * 3 and data["passages"] == []


async def test_partial_window_failure_shows_in_structured_content(settings: Settings, pages: PageServer) -> None:
    def some_empty(handler: Any) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length") or 0)))
        answer = "" if "sourdough" in json.dumps(body).lower() else "#Extracted Information Tag#: [[<T-1>]]"
        send(handler, 200, json.dumps({"choices": [{"message": {"content": answer}}]}).encode(), "application/json")

    with LocalServer({"/v1/chat/completions": some_empty}) as endpoint:
        partly = OpenAIExtractor(endpoint.url("/v1"), "m", max_retries=0)
        async with Client(create_server(settings, extractor=partly)) as client:
            result = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls})
    assert not result.is_error
    data = result.structured_content
    assert 0 < data["failed_windows"] < data["windows"] and data["passages"]
    assert any("empty answer" in w for w in data["warnings"])
    assert "! " in result.content[0].text and "empty answer" in result.content[0].text


async def test_concurrent_calls_are_capped_and_excess_calls_told_to_retry(extractor: Any, pages: PageServer) -> None:
    capped = server_settings(
        Settings(allow_private_networks=True, extractor="embedding", mcp_max_calls=1, mcp_queue_timeout=0.3)
    )
    pages.slow_started.clear()
    async with Client(create_server(capped, extractor=extractor)) as client:
        first = asyncio.create_task(client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": [pages.url("slow")]}))
        assert await asyncio.to_thread(pages.slow_started.wait, 20)
        busy = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls[:1]})
        assert busy.is_error and "busy" in busy.content[0].text and "Retry" in busy.content[0].text
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        # The slot is free again once the first call is gone.
        again = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls[:1]})
        assert not again.is_error
