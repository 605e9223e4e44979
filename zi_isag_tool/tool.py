"""LangChain tool ``web_extract``: what LangChain agents call (``create_agent``, LangGraph's ``ToolNode``).

A thin adapter over ``Pipeline``, like the retriever and the MCP server: the same arguments, bounds
and description as the MCP tool (``tool_args``), the same text the model reads (``render_text``), and
the call's JSON (``Result.to_dict``) as the artifact.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.tools import ArgsSchema, BaseTool, ToolException
from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, PrivateAttr, SecretStr

from .cli import render_text
from .errors import ZiIsagError
from .pipeline import Pipeline
from .settings import DEFAULT_TOOL_MAX_TOKENS, Settings
from .tool_args import MAX_TOKENS_LIMIT, TOOL_NAME, WebExtractArgs, tool_description
from .types import Result


class ZiIsagWebExtract(BaseTool):
    """Exact passages from fresh web pages for a question: the tool an agent calls to read the web.

    The tool searches (Tavily, a SearXNG instance, or both merged by reciprocal-rank fusion) or
    reads the URLs the model gives, and a tag-only extractor picks the passages that answer: the
    model gets the source text byte for byte, with URLs to cite, inside a token budget.

    Setup:
        Install ``zi-isag-tool`` and give it a search backend: a Tavily key, or a SearXNG instance
        you run yourself (no key; see the README for a two-line instance). Without either, the tool
        still reads the ``urls`` a model passes.

        .. code-block:: bash

            pip install -U zi-isag-tool langchain
            export TAVILY_API_KEY="tvly-..."
            # or, without a key:
            export ZI_ISAG_SEARCH=searxng ZI_ISAG_SEARXNG_URL=http://127.0.0.1:8888

    Key init args:
        max_tokens: int | None
            Passage budget when a call names none (default: ``tool_max_tokens`` of the settings,
            4000). The tool description tells the model the value.
        max_results: int | None
            Search results to read when a call names none (1-20; default 5).
        search: str | None
            Search backend(s): ``tavily``, ``searxng`` or ``tavily,searxng`` (default: settings).
        tavily_api_key: SecretStr | None
            Tavily key; read from ``TAVILY_API_KEY`` when not given.
        searxng_url: str | None
            A SearXNG instance with its JSON format on; read from ``ZI_ISAG_SEARXNG_URL``.
        extractor: str | Extractor
            Extractor backend: ``embedding`` (default, runs locally), ``bm25``, ``transformers:PATH``,
            ``openai:MODEL``... or an already built ``Extractor`` (shared, loaded once).
        allow_dirs: list[str]
            Local folders whose files a call may name in ``urls``; none by default, so a model's
            arguments never reach the disk.
        settings: Settings | None
            A full ``zi_isag_tool.Settings``; the fields above override it.

    Instantiate:
        .. code-block:: python

            from zi_isag_tool import ZiIsagWebExtract

            tool = ZiIsagWebExtract(max_tokens=2000)

    Usage:
        Invoke directly with args (the content the model would read):

        .. code-block:: python

            text = tool.invoke({"query": "How efficient are heat pumps at -15 °C?", "max_results": 3})

        Invoke with a ``ToolCall`` to get a ``ToolMessage`` whose ``artifact`` is the JSON dict
        (``query``, ``passages`` with ``source``/``title``/``tags``/``start``/``end``/``text``,
        ``sources``, ``tokens``, ``passages_left_out``, ``warnings``):

        .. code-block:: python

            message = tool.invoke(
                {
                    "type": "tool_call",
                    "id": "call-1",
                    "name": "web_extract",
                    "args": {"query": "How efficient are heat pumps at -15 °C?"},
                }
            )
            message.content                     # passages with sources, then the token summary
            message.artifact["passages"][0]     # {"source": "https://...", "text": "...", ...}

            message = await tool.ainvoke({...})  # native async all the way down

    Use within an agent:
        .. code-block:: python

            from langchain.agents import create_agent

            agent = create_agent("openai:gpt-4.1-mini", tools=[tool])
            state = agent.invoke(
                {"messages": [{"role": "user", "content": "How efficient are heat pumps in the cold?"}]}
            )
            print(state["messages"][-1].content)

        The tool's failures the model can act on (an empty query, no search configured, a search
        that failed) come back as an error ``ToolMessage`` the model reads, not as an exception
        (``handle_tool_error=True``).
    """

    name: str = TOOL_NAME
    description: str = tool_description(DEFAULT_TOOL_MAX_TOKENS)
    args_schema: ArgsSchema | None = WebExtractArgs
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: Any = True

    max_tokens: int | None = Field(
        default=None, ge=1, le=MAX_TOKENS_LIMIT, description="Passage budget when a call names none."
    )
    max_results: int | None = Field(default=None, ge=1, le=20, description="Search results to read by default.")
    search: str | None = Field(default=None, description="Search backend(s), e.g. 'searxng' or 'tavily,searxng'.")
    tavily_api_key: SecretStr | None = Field(default_factory=secret_from_env("TAVILY_API_KEY", default=None))
    searxng_url: str | None = Field(default_factory=from_env("ZI_ISAG_SEARXNG_URL", default=None))
    extractor: Any = Field(default=None, description="Extractor name (e.g. 'embedding', 'bm25') or an Extractor.")
    search_backend: Any = Field(default=None, exclude=True, description="A SearchBackend (or several) to search with.")
    allow_dirs: list[str] = Field(default_factory=list, description="Local folders a call may read files from.")
    settings: Settings | None = Field(default=None, exclude=True, description="Base settings; fields override it.")

    _pipeline: Pipeline = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        overrides: dict[str, Any] = {
            key: value
            for key, value in (
                ("search", self.search),
                ("tavily_api_key", self.tavily_api_key),
                ("searxng_url", self.searxng_url),
                ("max_results", self.max_results),
                ("tool_max_tokens", self.max_tokens),
            )
            if value is not None
        }
        base = self.settings if self.settings is not None else Settings()
        if overrides:
            base = Settings.model_validate({**base.model_dump(), **overrides})
        settings = base.for_agent_tool(self.allow_dirs)
        # Built once: the extractor (a model, for most backends) loads on the first call and stays.
        self._pipeline = Pipeline(settings, extractor=self.extractor, search=self.search_backend)
        self.description = tool_description(settings.tool_max_tokens)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline every call of this tool goes through."""
        return self._pipeline

    def _call_args(self, max_results: int | None, max_tokens: int | None) -> dict[str, Any]:
        settings = self._pipeline.settings
        return {
            "max_results": max_results if max_results is not None else settings.max_results,
            "max_tokens": max_tokens if max_tokens is not None else settings.tool_max_tokens,
        }

    def _run(
        self,
        query: str,
        urls: list[str] | None = None,
        max_results: int | None = None,
        max_tokens: int | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        try:
            result = self._pipeline.run(query, urls, **self._call_args(max_results, max_tokens))
        except ZiIsagError as exc:
            raise ToolException(str(exc)) from exc
        return _response(result)

    async def _arun(
        self,
        query: str,
        urls: list[str] | None = None,
        max_results: int | None = None,
        max_tokens: int | None = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        try:
            result = await self._pipeline.arun(query, urls, **self._call_args(max_results, max_tokens))
        except ZiIsagError as exc:
            raise ToolException(str(exc)) from exc
        return _response(result)


def _response(result: Result) -> tuple[str, dict[str, Any]]:
    """(what the model reads, the JSON dict for the program)."""
    return render_text(result), result.to_dict()
