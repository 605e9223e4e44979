"""The one orchestrator: search -> fetch -> convert -> segment+tag -> extract -> assemble.

The CLI, the LangChain retriever/compressor and the MCP server are thin adapters over ``Pipeline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._blocking import run_blocking
from .assemble import assemble
from .duplicates import duplicates
from .errors import InputError
from .extractors import Extractor, get_extractor
from .extractors.base import extraction_deadline, extraction_deadline_left
from .settings import Settings
from .sources import classify, dedupe, local_document, local_file_failure, local_file_path, source_key
from .tagging import count_texts, tag_document
from .tokens import TokenCounter, default_counter
from .types import Document, Result, SourceResult, TaggedWindow, TokenUsage, WindowSelection

if TYPE_CHECKING:
    from .web.backends import NamedBackend
    from .web.convert_pool import ConversionPool
    from .web.fetch import Fetcher
    from .web.search import SearchBackend, SearchHit

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
        search: a ``SearchBackend`` (or several, merged by reciprocal-rank fusion) to use when no
            sources are given, or backend names (``"searxng"``, ``"tavily,searxng"``); by default the
            backends named in ``settings.search`` (Tavily).
        fetcher: a long-lived ``Fetcher`` (e.g. one per server); by default one is opened per call.

    The extractor is loaded once, on first use, and reused by every call. So are the conversion
    worker processes (started on the first page or file to convert, lent to each call's fetcher);
    ``close()``/``aclose()`` (or ``with``/``async with``) stops them, as does the end of the process.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        extractor: Extractor | str | None = None,
        search: SearchBackend | Sequence[SearchBackend] | str | None = None,
        fetcher: Fetcher | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(extractor, str):
            overrides["extractor"] = extractor
            extractor = None
        if isinstance(search, str):  # backend names ("searxng", "tavily,searxng"): a settings override
            overrides["search"] = search
            search = None
        if settings is None:
            settings = Settings(**overrides)
        elif overrides:
            settings = Settings.model_validate({**settings.model_dump(), **overrides})
        self.settings = settings
        self._extractor = extractor
        self._search = search
        self._backends: list[NamedBackend] | None = None
        self._fetcher = fetcher
        self._load_lock = threading.Lock()
        self._pool: ConversionPool | None = None

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
        return run_blocking(self.arun(query, sources, **kwargs))

    def extract_documents(self, query: str, documents: Sequence[Document], **kwargs: Any) -> Result:
        """Synchronous ``aextract_documents``."""
        return run_blocking(self.aextract_documents(query, documents, **kwargs))

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
        documents, statuses, warnings = await self._gather(query, sources, max_results, progress)
        return await self._extract(query, documents, statuses, max_tokens, max_passages, progress, warnings)

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
        return await self._extract(query, list(documents), statuses, max_tokens, max_passages, progress, [])

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
    ) -> tuple[list[Document], list[SourceResult], list[str]]:
        given = dedupe(sources or [])
        ready: dict[str, Document] = {}
        titles: dict[str, str] = {}
        warnings: list[str] = []
        if not given:
            hits, warnings = await self._searched(query, max_results or self.settings.max_results, progress)
            given = dedupe([hit.url for hit in hits])
            for hit in hits:
                titles.setdefault(hit.url, hit.title)
                if hit.raw_content and hit.raw_content.strip():
                    # Tavily already fetched this page: no second request.
                    ready.setdefault(hit.url, Document(hit.url, hit.raw_content, hit.title))

        specs = [classify(s) for s in given]
        results: dict[int, tuple[Document | None, SourceResult]] = {}
        urls: list[tuple[int, str]] = []
        files: list[tuple[int, str]] = []
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
                files.append((i, spec.source))
            else:
                results[i] = (None, SourceResult(spec.source, "unsupported", spec.reason))

        if urls or files:
            # Pages and files are converted in the fetcher's worker processes, never in this one.
            async with self._fetcher_scope() as fetcher:
                loaded = await asyncio.gather(
                    self._fetched(fetcher, [u for _, u in urls], progress),
                    *(_load_file(fetcher, source, self.settings) for _, source in files),
                )
            for (i, url), page in zip(urls, loaded[0], strict=True):
                title = page.title or titles.get(url, "")
                if page.status == "ok" and page.text is not None:
                    document = Document(url, page.text, title, links=page.links)
                    results[i] = (document, SourceResult(url, "ok", title=title))
                else:
                    results[i] = (None, SourceResult(url, page.status, page.error, title=title))
            for (i, _), outcome in zip(files, loaded[1:], strict=True):
                results[i] = outcome
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
        return documents, statuses, warnings

    def _search_backends(self) -> list[NamedBackend]:
        """The backends to search with, built once (those given, or those named in settings)."""
        from .web.backends import NamedBackend, build_backends

        if self._backends is None:
            if self._search is None:
                self._backends = build_backends(self.settings)
            else:
                given = list(self._search) if isinstance(self._search, Sequence) else [self._search]
                self._backends = [
                    NamedBackend(str(getattr(b, "name", None) or type(b).__name__), b) for b in given
                ]
        return self._backends

    async def _searched(
        self, query: str, max_results: int, progress: ProgressCallback | None
    ) -> tuple[list[SearchHit], list[str]]:
        """Every backend at once; one ranking (reciprocal-rank fusion when there are several).

        A backend that fails (or lacks its key/URL) becomes a warning while the others serve; only
        when none can answer is the call a ``SearchError`` (a lone backend's own error, unchanged).
        """
        from .errors import SearchError
        from .web.fusion import reciprocal_rank_fusion
        from .web.search import SearchHits

        backends = self._search_backends()
        warnings = [f"search backend {b.name} is not configured: {b.reason}" for b in backends if b.error]
        live = [b for b in backends if b.backend is not None]
        done = 0
        await _report(progress, "search", 0, len(live))

        async def one(backend: SearchBackend) -> list[SearchHit]:
            nonlocal done
            try:
                return await backend.search(query, max_results=max_results)
            finally:
                done += 1
                await _report(progress, "search", done, len(live))

        outcomes = await asyncio.gather(*(one(b.backend) for b in live if b.backend), return_exceptions=True)
        rankings: list[list[SearchHit]] = []
        failures: list[str] = []
        for named, outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception) or len(backends) == 1:
                    raise outcome  # a lone backend's error (or a cancellation) stays what it was
                if not isinstance(outcome, SearchError):
                    logger.error("search backend %s failed", named.name, exc_info=outcome)
                failures.append(f"search backend {named.name} failed: {_message(outcome)}")
                continue
            rankings.append(list(outcome))
            if isinstance(outcome, SearchHits):
                warnings.extend(outcome.warnings)
        if not rankings:
            raise SearchError("Every search backend failed. " + " ".join(warnings + failures))
        for failure in failures:
            logger.warning("%s; the other backends served the search", failure)
        warnings.extend(failures)
        if len(backends) > 1:
            hits = reciprocal_rank_fusion(rankings, k=self.settings.rrf_k)[:max_results]
        else:
            hits = rankings[0][:max_results]
        if not hits:
            warnings.append("The search found no results for this query.")
        return hits, warnings

    @contextlib.asynccontextmanager
    async def _fetcher_scope(self) -> AsyncIterator[Fetcher]:
        """The injected long-lived fetcher, or one (with its conversion workers) for this call."""
        if self._fetcher is not None:
            yield self._fetcher
            return
        from .web.convert_pool import ConversionPool
        from .web.fetch import Fetcher

        with self._load_lock:
            if self._pool is None or self._pool.closed:
                self._pool = ConversionPool(self.settings.convert_workers, memory_mb=self.settings.convert_memory_mb)
            pool = self._pool
        async with Fetcher.from_settings(self.settings, pool=pool) as fetcher:
            yield fetcher

    async def _fetched(self, fetcher: Fetcher, urls: list[str], progress: ProgressCallback | None) -> list[Any]:
        if not urls:
            return []

        async def on_done(done: int, total: int) -> None:
            await _report(progress, "fetch", done, total)

        await _report(progress, "fetch", 0, len(urls))
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
        warnings: list[str],
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

        await _report(progress, "extract", 0, len(windows))
        # Scorer backends rank across every document of the call: they get all windows at once.
        chunk = len(windows) if getattr(extractor, "ranks_whole_call", False) else self.settings.extract_chunk
        chunks = _chunks_by_document(windows, max(chunk, 1))
        selections: list[WindowSelection] = []
        if chunks:
            assert extractor is not None
            with extraction_deadline(self.settings.extract_budget):
                selections = await _extract_chunks(extractor, query, chunks, self.settings.extract_budget, progress)

        passages, kept, left_out = assemble(
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
        dropped = sum(s.dropped_out_of_range for s in selections)
        extraction_warnings = _warnings(selections, dropped)
        for warning in extraction_warnings:
            logger.log(logging.WARNING if failed else logging.INFO, "%s", warning)
        return Result(
            query=query,
            passages=passages,
            sources=statuses,
            tokens=usage,
            extractor=getattr(extractor, "name", self.settings.extractor),
            tokenizer=counter.name,
            windows=len(windows),
            failed_windows=len(failed),
            dropped_tags=dropped,
            passages_left_out=left_out,
            warnings=[*warnings, *extraction_warnings],
            documents=documents,
        )

    def close(self) -> None:
        """Stop what this pipeline owns: its conversion workers (an injected fetcher belongs to its
        creator). A later call starts new workers."""
        with self._load_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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


_BUDGET_GRACE_S = 1.0
"""How long past the extraction deadline a backend may take to hand back what it has."""
_WARNING_ERRORS = 3


async def _extract_chunks(
    extractor: Extractor,
    query: str,
    chunks: list[list[TaggedWindow]],
    budget: float | None,
    progress: ProgressCallback | None,
) -> list[WindowSelection]:
    """The selections of every chunk, in order.

    Local backends get one chunk after another: a chunk is where a cancelled call stops spending
    compute. A backend that waits on a server and bounds its own requests (``concurrent_chunks``,
    the ``openai`` one) gets them all at once, so its windows are in flight together, never waiting
    for the slowest window of the chunk before.
    """
    total = sum(len(part) for part in chunks)
    done = 0

    async def run(part: list[TaggedWindow]) -> list[WindowSelection]:
        nonlocal done
        selections = await _extract_within_budget(extractor, query, part, budget)
        done += len(part)
        await _report(progress, "extract", done, total)
        return selections

    if not getattr(extractor, "concurrent_chunks", False):
        ordered: list[WindowSelection] = []
        for part in chunks:
            ordered.extend(await run(part))
        return ordered
    tasks = [asyncio.ensure_future(run(part)) for part in chunks]
    try:
        results = await asyncio.gather(*tasks)
    finally:
        # A failing chunk (or our cancellation) stops the others before their requests go out.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [selection for part in results for selection in part]


async def _extract_within_budget(
    extractor: Extractor, query: str, windows: list[TaggedWindow], budget: float | None
) -> list[WindowSelection]:
    """``extractor.aextract`` under the call's extraction deadline. Backends that read the deadline
    end their own windows in time; any other is stopped shortly after it (its windows then fail)."""
    left = extraction_deadline_left()
    if left is not None and left <= 0:
        return [_budget_spent(budget) for _ in windows]
    try:
        async with asyncio.timeout(None if left is None else left + _BUDGET_GRACE_S) as scope:
            return list(await extractor.aextract(query, windows))
    except TimeoutError:
        if not scope.expired():
            raise
        return [_budget_spent(budget) for _ in windows]


def _budget_spent(budget: float | None) -> WindowSelection:
    return WindowSelection(
        tags=[], failed=True, error=f"not extracted: the extraction budget ({budget or 0:g} s) was spent"
    )


def _warnings(selections: Sequence[WindowSelection], dropped: int) -> list[str]:
    """Short, safe lines about what went wrong in the extract stage (empty when nothing did)."""
    warnings: list[str] = []
    errors: dict[str, int] = {}
    for selection in selections:
        if selection.failed:
            message = selection.error or "failed"
            errors[message] = errors.get(message, 0) + 1
    for message, count in list(errors.items())[:_WARNING_ERRORS]:
        warnings.append(f"{count} of {len(selections)} windows failed: {message}")
    if len(errors) > _WARNING_ERRORS:
        rest = sum(list(errors.values())[_WARNING_ERRORS:])
        warnings.append(f"{rest} more windows failed with other errors")
    if dropped:
        warnings.append(f"{dropped} tag ids out of the windows' range were dropped")
    return warnings


async def _load_file(fetcher: Fetcher, source: str, settings: Settings) -> tuple[Document | None, SourceResult]:
    """One local file, converted in the fetcher's workers; failures become a status."""
    path, refused = local_file_path(source, settings)
    if path is None:
        assert refused is not None
        return None, refused
    try:
        page = await fetcher.convert_local_file(path)
    except Exception as exc:  # noqa: BLE001 - one file's problem must not stop the others
        failure = local_file_failure(source, exc)
        if failure is None:
            logger.exception("unexpected error while converting %s", source)
            failure = SourceResult(source, "error", f"unexpected error ({type(exc).__name__})")
        return None, failure
    return local_document(source, path, page)


def _chunks_by_document(windows: list[TaggedWindow], size: int) -> list[list[TaggedWindow]]:
    """Consecutive windows in groups of about ``size``, never splitting a document (a backend may
    pool a document's windows)."""
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


def _message(error: Exception) -> str:
    return str(error) or type(error).__name__
