"""The one orchestrator: search -> fetch -> convert -> segment+tag -> extract -> assemble.

The CLI, the LangChain retriever/compressor and the MCP server are thin adapters over ``Pipeline``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .assemble import assemble
from .duplicates import duplicates
from .errors import InputError
from .extractors import Extractor, get_extractor
from .settings import Settings
from .sources import classify, dedupe, load_local_file, source_key
from .tagging import count_texts, tag_document
from .tokens import TokenCounter, default_counter
from .types import Document, Result, SourceResult, TaggedWindow, TokenUsage, WindowSelection

if TYPE_CHECKING:
    from .web.fetch import Fetcher
    from .web.search import SearchBackend

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], Awaitable[None] | None]
"""``progress(stage, done, total)`` with stage in ``search``, ``fetch``, ``extract``."""


async def _report(progress: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    if progress is None:
        return
    outcome = progress(stage, done, total)
    if inspect.isawaitable(outcome):
        await outcome


class Pipeline:
    """Fresh web context for a query, selected by a tag-only extractor.

    Args:
        settings: a ``Settings``; keyword ``overrides`` are applied on top of it (or of the
            environment when ``settings`` is None), e.g. ``Pipeline(extractor="bm25", max_tokens=800)``.
        extractor: an already built ``Extractor`` to use instead of the one named in settings.
        search: a ``SearchBackend`` to use when no sources are given (default: Tavily from settings).
        fetcher: a long-lived ``Fetcher`` (e.g. one per server); by default one is opened per call.

    The extractor is loaded once, on first use, and reused by every call.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        extractor: Extractor | str | None = None,
        search: SearchBackend | None = None,
        fetcher: Fetcher | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(extractor, str):
            overrides["extractor"] = extractor
            extractor = None
        if settings is None:
            settings = Settings(**overrides)
        elif overrides:
            settings = Settings.model_validate({**settings.model_dump(), **overrides})
        self.settings = settings
        self._extractor = extractor
        self._search = search
        self._fetcher = fetcher
        self._load_lock = threading.Lock()

    # --- resources ---------------------------------------------------------------------------
    @property
    def extractor(self) -> Extractor:
        if self._extractor is None:
            with self._load_lock:
                if self._extractor is None:
                    self._extractor = get_extractor(self.settings.extractor, self.settings)
        return self._extractor

    @property
    def counter(self) -> TokenCounter:
        return self.extractor.token_counter or default_counter()

    @property
    def window_tokens(self) -> int:
        return self.settings.window_tokens or self.extractor.window_tokens

    # --- public API --------------------------------------------------------------------------
    def run(self, query: str, sources: Sequence[str] | None = None, **kwargs: Any) -> Result:
        """Synchronous ``arun``; safe to call from inside a running event loop (uses a worker thread)."""
        return _run_sync(self.arun(query, sources, **kwargs))

    def extract_documents(self, query: str, documents: Sequence[Document], **kwargs: Any) -> Result:
        """Synchronous ``aextract_documents``."""
        return _run_sync(self.aextract_documents(query, documents, **kwargs))

    async def arun(
        self,
        query: str,
        sources: Sequence[str] | None = None,
        *,
        max_results: int | None = None,
        max_tokens: int | None = None,
        max_passages: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Result:
        """Search (when no ``sources``) or take the given URLs/paths, then extract passages for ``query``."""
        query = self._check_query(query)
        documents, statuses = await self._gather(query, sources, max_results, progress)
        return await self._extract(query, documents, statuses, max_tokens, max_passages, progress)

    async def aextract_documents(
        self,
        query: str,
        documents: Sequence[Document],
        *,
        max_tokens: int | None = None,
        max_passages: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Result:
        """Extract from documents the caller already has (no search, no fetch)."""
        query = self._check_query(query)
        statuses = [SourceResult(d.source, "ok", title=d.title) for d in documents]
        return await self._extract(query, list(documents), statuses, max_tokens, max_passages, progress)

    # --- stages ------------------------------------------------------------------------------
    def _check_query(self, query: str) -> str:
        if not isinstance(query, str) or not query.strip():
            raise InputError("The query is empty: say what the passages should answer.")
        if len(query) > self.settings.max_query_chars:
            raise InputError(
                f"The query has {len(query)} characters; the limit is {self.settings.max_query_chars} "
                "(shorten it, or raise ZI_ISAG_MAX_QUERY_CHARS)."
            )
        return query.strip()

    async def _gather(
        self,
        query: str,
        sources: Sequence[str] | None,
        max_results: int | None,
        progress: ProgressCallback | None,
    ) -> tuple[list[Document], list[SourceResult]]:
        given = dedupe(sources or [])
        ready: dict[str, Document] = {}
        titles: dict[str, str] = {}
        if not given:
            hits = await self._searched(query, max_results or self.settings.max_results, progress)
            given = dedupe([hit.url for hit in hits])
            for hit in hits:
                titles.setdefault(hit.url, hit.title)
                if hit.raw_content and hit.raw_content.strip():
                    # Tavily already fetched this page: no second request.
                    ready.setdefault(hit.url, Document(hit.url, hit.raw_content, hit.title))

        specs = [classify(s) for s in given]
        results: dict[int, tuple[Document | None, SourceResult]] = {}
        urls: list[tuple[int, str]] = []
        first_of: dict[str, int] = {}
        same_page: dict[int, int] = {}  # index -> index of the same page under an earlier URL
        for i, spec in enumerate(specs):
            first = first_of.setdefault(source_key(spec.source), i)
            if first != i:
                # The same page under another URL (fragment, tracking parameters, default port).
                same_page[i] = first
            elif spec.source in ready:
                doc = ready[spec.source]
                results[i] = (doc, SourceResult(spec.source, "ok", title=doc.title))
            elif spec.kind == "url":
                urls.append((i, spec.source))
            elif spec.kind == "file":
                results[i] = await asyncio.to_thread(load_local_file, spec.source, self.settings)
            else:
                results[i] = (None, SourceResult(spec.source, "unsupported", spec.reason))

        if urls:
            for (i, url), page in zip(urls, await self._fetched([u for _, u in urls], progress), strict=True):
                title = page.title or titles.get(url, "")
                if page.status == "ok" and page.text is not None:
                    document = Document(url, page.text, title, links=page.links)
                    results[i] = (document, SourceResult(url, "ok", title=title))
                else:
                    results[i] = (None, SourceResult(url, page.status, page.error, title=title))
        for i, first in same_page.items():
            # Not read again: the page's outcome is its first URL's.
            original = results[first][1]
            copy = _mark_duplicate(SourceResult(specs[i].source, original.status, title=original.title), original.source)
            if original.status != "ok":
                copy.error = f"same page as {original.source}: {original.error or original.status}"
            results[i] = (None, copy)

        documents: list[Document] = []
        statuses: list[SourceResult] = []
        for i in range(len(specs)):
            loaded, status = results[i]
            statuses.append(status)
            if loaded is not None:
                documents.append(loaded)
        return documents, statuses

    async def _searched(self, query: str, max_results: int, progress: ProgressCallback | None) -> list[Any]:
        from .web.search import TavilySearch

        await _report(progress, "search", 0, 1)
        backend = self._search or TavilySearch.from_settings(self.settings)
        hits = await backend.search(query, max_results=max_results)
        await _report(progress, "search", 1, 1)
        return list(hits)

    async def _fetched(self, urls: list[str], progress: ProgressCallback | None) -> list[Any]:
        from .web.fetch import Fetcher

        async def on_done(done: int, total: int) -> None:
            await _report(progress, "fetch", done, total)

        await _report(progress, "fetch", 0, len(urls))
        if self._fetcher is not None:
            return await self._fetcher.fetch_many(urls, on_done=on_done)
        async with Fetcher.from_settings(self.settings) as fetcher:
            return await fetcher.fetch_many(urls, on_done=on_done)

    def _tag(self, documents: Sequence[Document], counter: TokenCounter) -> list[TaggedWindow]:
        windows: list[TaggedWindow] = []
        for index, doc in enumerate(documents):
            windows.extend(
                tag_document(
                    doc,
                    document_index=index,
                    counter=counter,
                    window_tokens=self.window_tokens,
                    max_segment_chars=self.settings.max_segment_chars,
                )
            )
        return windows

    async def _extract(
        self,
        query: str,
        documents: list[Document],
        statuses: list[SourceResult],
        max_tokens: int | None,
        max_passages: int | None,
        progress: ProgressCallback | None,
    ) -> Result:
        # Every "ok" source that duplicates no other, and only those, produced a document, in order.
        loaded = [s for s in statuses if s.status == "ok" and s.duplicate_of is None]
        for doc, status in zip(documents, loaded, strict=True):
            if not doc.text.strip():
                status.error = "empty: the page has no text to extract from"
        documents = _distinct(documents, loaded)
        extractor = self.extractor if documents else None
        counter = (extractor.token_counter if extractor else None) or default_counter()
        windows = await asyncio.to_thread(self._tag, documents, counter) if documents else []

        selections: list[WindowSelection] = []
        await _report(progress, "extract", 0, len(windows))
        for part in _chunks_by_document(windows, self.settings.extract_chunk):
            assert extractor is not None
            # Chunks are the points where a cancelled call stops spending compute.
            selections.extend(await extractor.aextract(query, part))
            await _report(progress, "extract", len(selections), len(windows))

        passages, kept = assemble(
            documents,
            windows,
            selections,
            counter=counter,
            max_tokens=max_tokens if max_tokens is not None else self.settings.max_tokens,
            max_passages=max_passages if max_passages is not None else self.settings.max_passages,
        )
        # Counted per segment (bounded pieces): one pass, and no giant single encoder call.
        content_tokens = sum(sum(count_texts(counter, w.plain_texts)) for w in windows)
        usage = TokenUsage(
            content=content_tokens,
            prompt=sum(s.prompt_tokens for s in selections),
            output=sum(s.output_tokens for s in selections),
            kept=kept,
        )
        failed = [s for s in selections if s.failed]
        if failed:
            logger.warning("%d of %d windows could not be parsed: %s", len(failed), len(selections), failed[0].error)
        return Result(
            query=query,
            passages=passages,
            sources=statuses,
            tokens=usage,
            extractor=getattr(extractor, "name", self.settings.extractor),
            tokenizer=counter.name,
            windows=len(windows),
            failed_windows=len(failed),
            dropped_tags=sum(s.dropped_out_of_range for s in selections),
            documents=documents,
        )

    async def aclose(self) -> None:
        """Close what this pipeline owns (an injected fetcher belongs to its creator)."""

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _mark_duplicate(status: SourceResult, original: str) -> SourceResult:
    status.error = f"duplicate of {original}: extracted once"
    status.duplicate_of = original
    return status


def _distinct(documents: list[Document], statuses: list[SourceResult]) -> list[Document]:
    """The documents whose text is not (nearly) the same as an earlier one's; the statuses of the
    others become notes naming the source they duplicate."""
    originals = duplicates([doc.text for doc in documents])
    kept: list[Document] = []
    for doc, status, original in zip(documents, statuses, originals, strict=True):
        if original is None:
            kept.append(doc)
        else:
            _mark_duplicate(status, documents[original].source)
    return kept


def _chunks_by_document(windows: list[TaggedWindow], size: int) -> list[list[TaggedWindow]]:
    """Consecutive windows in groups of about ``size``, never splitting a document: scorer
    backends select per document, so a document must reach the extractor whole."""
    chunks: list[list[TaggedWindow]] = []
    current: list[TaggedWindow] = []
    for i, window in enumerate(windows):
        current.append(window)
        document_ends = i + 1 == len(windows) or windows[i + 1].document_index != window.document_index
        if document_ends and len(current) >= size:
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def _run_sync(coro: Awaitable[Result]) -> Result:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    # Called from inside an event loop (Jupyter, an async app): run on a private loop in a thread.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="zi-isag-run", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
