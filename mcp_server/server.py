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
from zi_isag_tool.errors import InputError, SearchError, SearchNotConfiguredError, ZiIsagError
from zi_isag_tool.extractors import Extractor
from zi_isag_tool.pipeline import Pipeline
from zi_isag_tool.settings import Settings
from zi_isag_tool.sources import classify
from zi_isag_tool.tool_args import MaxResultsArg, MaxTokensArg, QueryArg, UrlsArg, tool_description
from zi_isag_tool.types import Result
from zi_isag_tool.web.fetch import Fetcher

from .auth import StaticTokenVerifier, auth_settings, transport_security

logger = logging.getLogger(__name__)

SERVER_NAME = "zi-isag"

INSTRUCTIONS = (
    "web_extract finds fresh web pages for a question (or reads the URLs you give) and returns only "
    "the passages that answer it, copied exactly from the pages, with their source URLs. Use it for "
    "facts that may be recent or that you need to cite; quote the passages and cite their source."
)

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
    passages_left_out: int = Field(
        0, description="Selected passages the token budget dropped or cut short (a larger max_tokens returns them)."
    )
    windows: int = Field(description="Tagged windows of page text sent to the extractor.")
    failed_windows: int = Field(description="Windows whose extraction failed; their text could not be selected from.")
    dropped_tags: int = Field(description="Tag ids the extractor named that were out of range and dropped.")
    warnings: list[str] = Field(
        description="Problems that did not stop the call: a search backend that failed while others served, "
        "failed extraction windows, dropped tag ids."
    )


# --- per-server state --------------------------------------------------------------------------------
@dataclass(slots=True)
class ServerState:
    """What the lifespan creates once and every call shares."""

    pipeline: Pipeline
    settings: Settings
    calls: asyncio.Semaphore
    """Slots for concurrent web_extract calls (``settings.mcp_max_calls``)."""


def server_settings(settings: Settings | None = None, allow_dirs: Sequence[str] = ()) -> Settings:
    """The server's settings: local files stay off unless the operator names allowed directories."""
    return (settings or Settings()).for_agent_tool(allow_dirs)


def _lifespan(settings: Settings, extractor: Extractor | None):
    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        async with Fetcher.from_settings(settings) as fetcher:
            pipeline = Pipeline(settings, extractor=extractor, fetcher=fetcher)
            # Load the model now, once, rather than in the first caller's time.
            await asyncio.to_thread(lambda: pipeline.counter)
            logger.info("zi-isag MCP server ready (extractor %s)", pipeline.extractor.name)
            yield ServerState(
                pipeline=pipeline, settings=settings, calls=asyncio.Semaphore(settings.mcp_max_calls)
            )

    return lifespan


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


def _error(message: str, structured: dict[str, Any] | None = None) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=message)], structured_content=structured, is_error=True
    )


def _structured(result: Result) -> dict[str, Any]:
    return WebExtractOutput.model_validate(result.to_dict()).model_dump(mode="json")


def _check_urls(urls: list[str] | None, settings: Settings) -> list[str] | None:
    if not urls:
        return None
    for i, url in enumerate(urls):
        if classify(url).kind != "url" and not settings.allow_local_files:
            raise ToolError(f"urls[{i}] is not an http(s) URL: give absolute URLs such as https://example.org/page")
    return urls


def _total_failure(result: Result) -> str | None:
    """A message when no source could be read at all, or extraction failed for every window
    (partial failures stay in ``sources``, ``failed_windows`` and ``warnings``)."""
    if result.extraction_failed:
        lines = [f"Extraction failed for all {result.windows} windows of the pages read, so no passage could be chosen:"]
        lines += [f"- {warning}" for warning in result.warnings]
        lines.append(
            "This is a server-side extractor problem, not a problem with the pages: try again in a "
            "minute, or with fewer or shorter pages (urls=[...])."
        )
        return "\n".join(lines)
    if not result.sources or any(s.status == "ok" for s in result.sources):
        return None
    lines = [f"None of the {len(result.sources)} pages could be read:"]
    lines += [f"- {s.source}: {s.status}" + (f" ({s.error})" if s.error else "") for s in result.sources]
    lines.append("Check the URLs, or call web_extract again with other urls (or none, to search).")
    return "\n".join(lines)


@asynccontextmanager
async def _call_slot(state: ServerState) -> AsyncIterator[bool]:
    """A slot among ``mcp_max_calls``; yields False when none freed up within ``mcp_queue_timeout``."""
    try:
        async with asyncio.timeout(state.settings.mcp_queue_timeout):
            await state.calls.acquire()
    except TimeoutError:
        yield False
        return
    try:
        yield True
    finally:
        state.calls.release()


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
    query: QueryArg,
    ctx: Context[ServerState, Any],
    urls: UrlsArg = None,
    max_results: MaxResultsArg = 5,
    max_tokens: MaxTokensArg = None,
) -> Annotated[CallToolResult, WebExtractOutput]:
    state = ctx.request_context.lifespan_context
    sources = _check_urls(urls, state.settings)
    budget = max_tokens if max_tokens is not None else state.settings.tool_max_tokens
    try:
        async with _call_slot(state) as admitted:
            if not admitted:
                return _error(
                    f"The server is busy: {state.settings.mcp_max_calls} web_extract calls are running and "
                    f"no slot freed up within {state.settings.mcp_queue_timeout:g} s. Retry in a little while."
                )
            result = await _isolated(
                state.pipeline.arun(
                    query, sources, max_results=max_results, max_tokens=budget, progress=_Progress(ctx)
                )
            )
    except InputError as exc:
        raise ToolError(str(exc)) from None  # about the caller's own input: safe and actionable
    except SearchNotConfiguredError:
        return _error(
            "Web search is not configured on this server (no Tavily API key, no SearXNG URL). "
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
        # Still structured: the client sees per-source statuses, failed_windows and warnings.
        return _error(failure, _structured(result))
    return CallToolResult(
        content=[TextContent(type="text", text=render_text(result))], structured_content=_structured(result)
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
        description=tool_description(settings.tool_max_tokens),
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
    server: MCPServer[ServerState],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    allowed_hosts: Sequence[str] = (),
    stateless: bool = False,
    json_response: bool | None = None,
) -> Starlette:
    """The streamable HTTP ASGI app, with Host/Origin validation always on.

    ``stateless``: no sessions (no ``Mcp-Session-Id``, nothing kept between requests), so replicas
    behind a load balancer need no sticky routing. ``json_response``: one JSON body per request
    instead of an SSE stream, which drops the request's progress notifications; None means JSON when
    stateless. Clients speaking the 2026-07-28 protocol send self-contained requests either way.
    """
    json_response = stateless if json_response is None else json_response
    logger.info(
        "streamable HTTP: %s, %s responses%s",
        "stateless" if stateless else "with sessions",
        "JSON" if json_response else "SSE",
        " (no progress notifications)" if json_response else "",
    )
    return server.streamable_http_app(
        transport_security=transport_security(host, port, allowed_hosts),
        host=host,
        stateless_http=stateless,
        json_response=json_response,
    )
