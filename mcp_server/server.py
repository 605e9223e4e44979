"""The MCP server: one tool, ``web_extract``, a thin adapter over ``zi_isag_tool.Pipeline``.

One ``Fetcher`` (HTTP client) and one ``Pipeline`` with its extractor loaded are created per server
in the lifespan and shared by every call. The tool returns structured output (the CLI's ``--json``
shape) plus a text rendering; bad arguments and total failures are ``isError`` results with safe,
actionable messages; per-source failures are reported in ``sources``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field
from starlette.applications import Starlette

from zi_isag_tool import __version__
from zi_isag_tool.cli import render_text
from zi_isag_tool.errors import InputError, MissingApiKeyError, SearchError, ZiIsagError
from zi_isag_tool.extractors import Extractor
from zi_isag_tool.pipeline import Pipeline
from zi_isag_tool.settings import Settings
from zi_isag_tool.sources import classify
from zi_isag_tool.types import Result
from zi_isag_tool.web.fetch import Fetcher

from .auth import StaticTokenVerifier, auth_settings, transport_security

logger = logging.getLogger(__name__)

SERVER_NAME = "zi-isag"
MAX_URLS = 20
MAX_QUERY_CHARS = 4000

INSTRUCTIONS = (
    "web_extract finds fresh web pages for a question (or reads the URLs you give) and returns only "
    "the passages that answer it, copied exactly from the pages, with their source URLs. Use it for "
    "facts that may be recent or that you need to cite; quote the passages and cite their source."
)

TOOL_DESCRIPTION = """Search the web (or read the given URLs) and return the exact passages that answer a question.

Passages are verbatim text from the pages, chosen by a tag-only extractor, with their source URL,
title, segment tags and character offsets; nothing is paraphrased. `sources` says which pages could
not be read and why; `tokens` counts the page text read and the passage text kept.
Give `urls` to read specific pages instead of searching."""


# --- output schema (same shape as `zi-isag extract --json`) ------------------------------------------
class PassageOut(BaseModel):
    source: str = Field(description="URL the passage comes from.")
    title: str = Field(description="Title of the page.")
    tags: list[int] = Field(description="Numbers of the page's segments (sentences/blocks) in the passage.")
    start: int = Field(description="Start offset of the passage in the page's converted text.")
    end: int = Field(description="End offset (exclusive) of the passage in the page's converted text.")
    text: str = Field(description="The passage, verbatim.")


class SourceOut(BaseModel):
    source: str = Field(description="A page that was read (or could not be).")
    status: str = Field(description="ok, blocked, timeout, too_large, unsupported, http_error or error.")
    error: str | None = Field(
        description="Why the page gave no text, when it did not; on an ok page, a note (empty, or a duplicate of another page)."
    )


class TokensOut(BaseModel):
    content: int = Field(description="Tokens of the pages' text.")
    prompt: int = Field(description="Tokens sent to the extractor.")
    output: int = Field(description="Tokens written by the extractor.")
    kept: int = Field(description="Tokens of the passages returned.")


class WebExtractOutput(BaseModel):
    query: str
    passages: list[PassageOut]
    sources: list[SourceOut]
    tokens: TokensOut


# --- per-server state --------------------------------------------------------------------------------
@dataclass(slots=True)
class ServerState:
    """What the lifespan creates once and every call shares."""

    pipeline: Pipeline
    settings: Settings


def server_settings(settings: Settings | None = None, allow_dirs: Sequence[str] = ()) -> Settings:
    """The server's settings: local files stay off unless the operator names allowed directories."""
    settings = settings or Settings()
    roots = [*settings.local_roots, *allow_dirs]
    return Settings.model_validate(
        {**settings.model_dump(), "local_roots": roots, "allow_local_files": bool(roots)}
    )


def _lifespan(settings: Settings, extractor: Extractor | None):
    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        search = _search_backend(settings)
        async with Fetcher.from_settings(settings) as fetcher:
            pipeline = Pipeline(settings, extractor=extractor, search=search, fetcher=fetcher)
            # Load the model now, once, rather than in the first caller's time.
            await asyncio.to_thread(lambda: pipeline.counter)
            logger.info("zi-isag MCP server ready (extractor %s)", pipeline.extractor.name)
            yield ServerState(pipeline=pipeline, settings=settings)

    return lifespan


def _search_backend(settings: Settings) -> Any:
    from zi_isag_tool.web.search import TavilySearch

    try:
        return TavilySearch.from_settings(settings)
    except MissingApiKeyError:
        logger.info("no Tavily API key: web_extract reads given URLs only")
        return None  # the pipeline then raises MissingApiKeyError, answered below


# --- the tool ------------------------------------------------------------------------------------------
_STAGES = {"search": 0, "fetch": 1, "extract": 2}
_CLEANUP_S = 10.0
"""How long a cancelled call may take to close its connections before we stop waiting."""


class _Progress:
    """Pipeline progress -> MCP progress: one increasing number over the three stages (0..3)."""

    def __init__(self, ctx: Context[ServerState, Any]) -> None:
        self._ctx = ctx
        self._last = -1.0

    async def __call__(self, stage: str, done: int, total: int) -> None:
        value = _STAGES.get(stage, 2) + (min(done / total, 1.0) if total else 1.0)
        if value <= self._last:  # the spec wants strictly increasing progress
            return
        self._last = value
        try:
            await self._ctx.report_progress(value, float(len(_STAGES)), f"{stage} {done}/{total}")
        except Exception:  # noqa: BLE001 - a lost progress message must not fail the call
            logger.debug("could not send a progress notification", exc_info=True)


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def _check_urls(urls: list[str] | None, settings: Settings) -> list[str] | None:
    if not urls:
        return None
    for i, url in enumerate(urls):
        if classify(url).kind != "url" and not settings.allow_local_files:
            raise ToolError(f"urls[{i}] is not an http(s) URL: give absolute URLs such as https://example.org/page")
    return urls


def _total_failure(result: Result) -> str | None:
    """A message when no source could be read at all (partial failures stay in ``sources``)."""
    if not result.sources or any(s.status == "ok" for s in result.sources):
        return None
    lines = [f"None of the {len(result.sources)} pages could be read:"]
    lines += [f"- {s.source}: {s.status}" + (f" ({s.error})" if s.error else "") for s in result.sources]
    lines.append("Check the URLs, or call web_extract again with other urls (or none, to search).")
    return "\n".join(lines)


async def _isolated(call: Coroutine[Any, Any, Result]) -> Result:
    """Run ``call`` in its own asyncio task and, if we are cancelled, cancel it once and let it unwind.

    The SDK cancels a handler through an anyio cancel scope, which re-raises at every ``await`` until
    the scope exits, so cleanup code that awaits (closing a half-read HTTP response) would be cut
    short and leave the socket open. A separate task receives one ordinary cancellation instead.
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except BaseException:
        task.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_S):
            await asyncio.wait({task})
        raise


async def web_extract(
    query: Annotated[
        str,
        Field(
            description="The question the passages should answer, in natural language.",
            min_length=1,
            max_length=MAX_QUERY_CHARS,
        ),
    ],
    ctx: Context[ServerState, Any],
    urls: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=2048)]] | None,
        Field(
            description="http(s) URLs of pages to read instead of searching the web (at most 20).",
            max_length=MAX_URLS,
        ),
    ] = None,
    max_results: Annotated[
        int, Field(description="How many search results to read when no urls are given.", ge=1, le=20)
    ] = 5,
    max_tokens: Annotated[
        int | None,
        Field(description="Token budget for the passages returned; the best are kept first.", ge=1, le=100_000),
    ] = None,
) -> Annotated[CallToolResult, WebExtractOutput]:
    state = ctx.request_context.lifespan_context
    sources = _check_urls(urls, state.settings)
    try:
        result = await _isolated(
            state.pipeline.arun(
                query, sources, max_results=max_results, max_tokens=max_tokens, progress=_Progress(ctx)
            )
        )
    except InputError as exc:
        raise ToolError(str(exc)) from None  # about the caller's own input: safe and actionable
    except MissingApiKeyError:
        return _error(
            "Web search is not configured on this server (no Tavily API key). "
            "Call web_extract again with urls=[...] to read specific pages."
        )
    except SearchError as exc:
        logger.warning("search failed: %s", exc)
        return _error("The web search failed. Try again later, or call web_extract with urls=[...].")
    except ZiIsagError as exc:
        logger.error("web_extract failed: %s", exc)
        return _error("The server could not extract passages (extractor failure). Try again later.")
    except Exception:
        logger.exception("web_extract failed unexpectedly")
        return _error("web_extract failed unexpectedly on the server. Try again later.")

    failure = _total_failure(result)
    if failure is not None:
        return _error(failure)
    return CallToolResult(
        content=[TextContent(type="text", text=render_text(result))],
        structured_content=WebExtractOutput.model_validate(result.to_dict()).model_dump(mode="json"),
    )


# --- server factory -----------------------------------------------------------------------------------
def create_server(
    settings: Settings | None = None,
    *,
    extractor: Extractor | None = None,
    token: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> MCPServer[ServerState]:
    """Build the server. ``settings`` should come from ``server_settings`` (local files off).

    ``extractor``: an already loaded extractor to share (tests, embedding in an app); by default
    the one named in settings is loaded in the lifespan. ``token``: require this bearer token on
    the HTTP transport (``host``/``port`` are where it is served).
    """
    settings = settings if settings is not None else server_settings()
    auth: dict[str, Any] = {}
    if token:
        auth = {"auth": auth_settings(host, port), "token_verifier": StaticTokenVerifier(token)}
    server: MCPServer[ServerState] = MCPServer(
        SERVER_NAME,
        title="ZI-ISAG web extraction",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=_lifespan(settings, extractor),
        **auth,
    )
    server.add_tool(
        web_extract,
        title="Extract passages from the web",
        description=TOOL_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Extract passages from the web",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    return server


def http_app(
    server: MCPServer[ServerState], *, host: str = "127.0.0.1", port: int = 8000, allowed_hosts: Sequence[str] = ()
) -> Starlette:
    """The streamable HTTP ASGI app, with Host/Origin validation always on."""
    return server.streamable_http_app(
        transport_security=transport_security(host, port, allowed_hosts), host=host
    )
