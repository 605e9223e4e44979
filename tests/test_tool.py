"""ZiIsagWebExtract: LangChain's standard tool tests, the MCP tool's schema, and a real agent loop.

Offline: the standard suites read the bundled example pages (local files, allowed by ``allow_dirs``)
with the embedded MiniLM extractor; the agent loop searches a local SearXNG-speaking server and
fetches the example pages from 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fixtures.extractors import pinned_embedding
from fixtures.web.web_servers import LocalServer, SearXNGStub, searxng_result
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import BaseTool, ToolException
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from mcp import Client
from pydantic import PrivateAttr

from evals.bench_adapters import PageServer
from mcp_server.server import create_server, server_settings
from zi_isag_tool import ZiIsagWebExtract
from zi_isag_tool.cli import DEMO_QUERY, example_sources
from zi_isag_tool.settings import Settings

pytestmark = pytest.mark.slow

EMBEDDED = pinned_embedding()
EXAMPLES = str(Path(example_sources()[0]).parent)


def _standard_params() -> dict[str, Any]:
    return {"extractor": EMBEDDED, "allow_dirs": [EXAMPLES]}


class TestZiIsagWebExtractUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[ZiIsagWebExtract]:
        return ZiIsagWebExtract

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return _standard_params()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": DEMO_QUERY, "urls": example_sources(), "max_tokens": 300}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"TAVILY_API_KEY": "tvly-from-env-123", "ZI_ISAG_SEARXNG_URL": "http://127.0.0.1:8888"},
            {"extractor": "bm25"},
            {"tavily_api_key": "tvly-from-env-123", "searxng_url": "http://127.0.0.1:8888"},
        )


class TestZiIsagWebExtractIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> type[ZiIsagWebExtract]:
        return ZiIsagWebExtract

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return _standard_params()

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"query": DEMO_QUERY, "urls": example_sources()}


@pytest.fixture(scope="module")
def tool() -> ZiIsagWebExtract:
    return ZiIsagWebExtract(**_standard_params())


def _call(args: dict[str, Any], call_id: str = "call-1") -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": "web_extract", "args": args}


# --- the tool itself -----------------------------------------------------------------------------------


async def test_same_arguments_and_description_as_the_mcp_tool() -> None:
    settings = server_settings(Settings(extractor="embedding", tool_max_tokens=1234))
    async with Client(create_server(settings, extractor=EMBEDDED)) as client:
        mcp_tool = (await client.list_tools()).tools[0]
    lc_tool = ZiIsagWebExtract(extractor=EMBEDDED, max_tokens=1234)
    lc_schema = lc_tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert lc_tool.name == mcp_tool.name == "web_extract"
    assert lc_tool.description == mcp_tool.description and "capped at 1234 tokens" in lc_tool.description
    assert lc_schema["properties"] == mcp_tool.input_schema["properties"]
    assert lc_schema["required"] == mcp_tool.input_schema["required"] == ["query"]


def test_content_is_the_readable_text_and_the_artifact_the_json(tool: ZiIsagWebExtract) -> None:
    message = tool.invoke(_call({"query": DEMO_QUERY, "urls": example_sources()}))
    assert isinstance(message, ToolMessage) and message.status == "success" and message.name == "web_extract"
    data = message.artifact
    assert set(data) == {"query", "passages", "sources", "tokens", "passages_left_out", "warnings"}
    assert data["passages"] and [s["status"] for s in data["sources"]] == ["ok"] * 3
    for passage in data["passages"]:
        text = Path(passage["source"]).read_text(encoding="utf-8")
        if passage["source"].endswith((".md", ".txt")):  # converted HTML has other offsets
            assert text[passage["start"] : passage["end"]] == passage["text"]
        assert passage["text"].splitlines()[0] in message.content
    assert "tokens (" in message.content and data["passages_left_out"] == 0
    assert not any("sourdough" in p["source"] for p in data["passages"])


async def test_default_budget_is_stated_applied_and_what_it_left_out_is_counted() -> None:
    small = ZiIsagWebExtract(**_standard_params(), max_tokens=30)
    assert "capped at 30 tokens" in small.description
    message = await small.ainvoke(_call({"query": DEMO_QUERY, "urls": example_sources()}))
    data = message.artifact
    assert 0 < data["tokens"]["kept"] <= 30
    assert data["passages_left_out"] >= 1 and "did not fit the token budget" in message.content
    roomy = await small.ainvoke(_call({"query": DEMO_QUERY, "urls": example_sources(), "max_tokens": 5000}))
    assert roomy.artifact["passages_left_out"] == 0
    assert roomy.artifact["tokens"]["kept"] > data["tokens"]["kept"]
    default = ZiIsagWebExtract(extractor=EMBEDDED)
    assert f"capped at {Settings.model_fields['tool_max_tokens'].default} tokens" in default.description


def test_failures_come_back_as_error_messages_the_model_reads(
    tool: ZiIsagWebExtract, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tool.invoke(_call({"query": "   ", "urls": example_sources()}))
    assert empty.status == "error" and "query is empty" in empty.content
    for name in ("TAVILY_API_KEY", "ZI_ISAG_TAVILY_API_KEY", "ZI_ISAG_SEARXNG_URL", "ZI_ISAG_SEARCH"):
        monkeypatch.delenv(name, raising=False)
    unconfigured = ZiIsagWebExtract(extractor=EMBEDDED)
    no_search = unconfigured.invoke(_call({"query": DEMO_QUERY}))
    assert no_search.status == "error"
    for needle in ("TAVILY_API_KEY", "ZI_ISAG_SEARXNG_URL", "urls=[...]"):
        assert needle in no_search.content
    strict = ZiIsagWebExtract(extractor=EMBEDDED, handle_tool_error=False)
    with pytest.raises(ToolException, match="TAVILY_API_KEY"):
        strict.invoke({"query": DEMO_QUERY})


def test_local_files_only_under_allowed_dirs() -> None:
    closed = ZiIsagWebExtract(extractor=EMBEDDED)
    message = closed.invoke(_call({"query": DEMO_QUERY, "urls": example_sources()[:1]}))
    assert [s["status"] for s in message.artifact["sources"]] == ["blocked"]
    assert message.artifact["passages"] == []


def test_native_async_and_secrets_kept_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ZiIsagWebExtract._arun is not BaseTool._arun  # a coroutine over Pipeline.arun, no executor
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-very-secret-42")
    tool = ZiIsagWebExtract(extractor="bm25")
    assert tool.tavily_api_key is not None and tool.tavily_api_key.get_secret_value() == "tvly-very-secret-42"
    for shown in (repr(tool), str(tool), repr(tool.pipeline.settings)):
        assert "tvly-very-secret-42" not in shown


# --- inside a real agent loop --------------------------------------------------------------------------


class ScriptedToolCallingModel(GenericFakeChatModel):
    """A chat model that answers from a script (first a tool call, then a final answer) and records
    the tools bound to it and the messages it was shown, as a provider's model would receive them."""

    _bound: list[Any] = PrivateAttr(default_factory=list)
    _seen: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        self._bound.extend(tools)
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self._seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


@pytest.fixture(scope="module")
def searched_pages() -> Iterator[tuple[str, PageServer]]:
    """A SearXNG-speaking server whose results are the example pages on a local page server."""
    with PageServer() as pages:
        stub = SearXNGStub([searxng_result(url, url.rsplit("/", 1)[-1], ["duckduckgo"], 1.0) for url in pages.urls])
        with LocalServer({"/search": stub.route}) as searxng:
            yield searxng.url(""), pages


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_langchain_agent_calls_the_tool_and_reads_its_answer(
    searched_pages: tuple[str, PageServer], mode: str
) -> None:
    from langchain.agents import create_agent

    searxng_url, pages = searched_pages
    tool = ZiIsagWebExtract(
        extractor=EMBEDDED,
        search="searxng",
        searxng_url=searxng_url,
        settings=Settings(allow_private_networks=True),
    )
    model = ScriptedToolCallingModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": "web_extract", "args": {"query": DEMO_QUERY, "max_results": 3}, "id": "call-7"}],
                ),
                AIMessage(content="They keep a COP of about 2 at -15 °C, per the field data."),
            ]
        )
    )
    agent = create_agent(model, tools=[tool])
    question = {"messages": [HumanMessage(DEMO_QUERY)]}
    state = agent.invoke(question) if mode == "sync" else await agent.ainvoke(question)

    human, call, tool_message, answer = state["messages"]
    assert isinstance(call, AIMessage) and call.tool_calls[0]["name"] == "web_extract"
    assert isinstance(tool_message, ToolMessage)
    assert (tool_message.name, tool_message.tool_call_id, tool_message.status) == ("web_extract", "call-7", "success")
    data = tool_message.artifact
    assert [s["source"] for s in data["sources"]] == pages.urls  # what the search found, in its order
    assert data["passages"] and all(p["source"] in pages.urls for p in data["passages"])
    assert data["passages"][0]["text"].splitlines()[0] in tool_message.content
    assert answer.content.startswith("They keep a COP")
    # The model was offered the tool, and its second turn was shown the tool's content.
    assert model._bound and all(bound is tool for bound in model._bound)  # bound before each model turn
    assert len(model._seen) == 2 and model._seen[1][-1].content == tool_message.content
