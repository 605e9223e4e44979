"""Page conversion in a small pool of worker processes: a crash, hang or overrun costs one page.

lxml and trafilatura are not safe when several threads convert at once (native crashes, trafilatura
issues #840 and #925), and a thread cannot be stopped at a deadline. So every conversion runs in a
worker process of a ``pebble.ProcessPool``: a worker that dies takes only its page with it, one that
passes the page deadline (or whose caller gave up) is killed, and both are replaced while the other
pages go on. Workers never come from a ``fork`` of this process, which may hold torch and running
threads: they are forked by a ``forkserver`` that imported only the conversion modules, so a
replacement starts in milliseconds. Each worker's address space is capped (``RLIMIT_AS``), so one
page cannot take the machine's memory either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.spawn
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pebble import ProcessExpired, ProcessPool

from ..logs import set_levels, third_party_levels
from .convert import ConvertedPage, ConvertOptions, convert_html, decode_body, markdown_title, pdf_to_text

logger = logging.getLogger(__name__)

T = TypeVar("T")

PageKind = Literal["html", "pdf", "text", "markdown"]

# Imported once by the fork server, so each worker starts with them loaded.
CONVERSION_MODULES = (
    "zi_isag_tool.web.convert",
    "trafilatura",
    "lxml.etree",
    "bs4",
    "markdownify",
    "charset_normalizer",
    "pypdf",
)
DEFAULT_MAX_WORKERS = 8
TASKS_PER_WORKER = 200
"""A worker is replaced after this many pages, so memory that parsers keep does not pile up."""
_STOP_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class PageJob:
    """One fetched body to convert; crosses to the worker by pickle."""

    kind: PageKind
    body: bytes
    content_type: str | None
    """The response's ``Content-Type`` header (its charset is used to decode)."""
    url: str
    options: ConvertOptions = ConvertOptions()


def convert_page(job: PageJob) -> ConvertedPage:
    """A fetched page converted; runs in a worker. ``InputError`` for an unreadable PDF."""
    if job.kind == "pdf":
        return ConvertedPage(*pdf_to_text(job.body))
    text = decode_body(job.body, job.content_type)
    if job.kind == "html":
        return convert_html(text, url=job.url, options=job.options)
    return ConvertedPage(markdown_title(text), text)


PageConverter = Callable[[PageJob], ConvertedPage]
"""A picklable top-level function run in a worker for each page (``convert_page`` by default)."""


class ConversionFailed(Exception):
    """The conversion of one page did not finish: ``status`` and a short message safe to show."""

    def __init__(self, status: Literal["error", "timeout"], message: str) -> None:
        super().__init__(message)
        self.status: Literal["error", "timeout"] = status
        self.message = message


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


# --- how workers start -------------------------------------------------------------------------------
# A new process normally re-runs the caller's main script before its task (multiprocessing's
# "spawn" preparation). A conversion worker needs none of it, and a script without an
# ``if __name__ == "__main__":`` guard would start another pipeline, and repeat its own side effects,
# in every worker. So workers are started through a Popen that leaves the main module out.

_launching = threading.local()


def _preparation_data_without_main(name: str) -> dict[str, Any]:
    data = _stdlib_preparation_data(name)
    if getattr(_launching, "conversion_worker", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


_stdlib_preparation_data = multiprocessing.spawn.get_preparation_data


def _start_context() -> Any:
    if _WorkerContext is None:  # no fork server (Windows): spawn it is
        return multiprocessing.get_context("spawn")
    if multiprocessing.spawn.get_preparation_data is _stdlib_preparation_data:
        # Narrow: only launches made by _WorkerPopen (flagged on this thread) lose the main module.
        multiprocessing.spawn.get_preparation_data = _preparation_data_without_main
    context = _WorkerContext()
    # Only takes effect if the fork server is not running yet (it is one per process).
    context.set_forkserver_preload(list(CONVERSION_MODULES))
    return context


_WorkerContext: Any = None
if "forkserver" in multiprocessing.get_all_start_methods():
    from multiprocessing import popen_forkserver

    class _WorkerPopen(popen_forkserver.Popen):
        def _launch(self, process_obj: Any) -> None:
            _launching.conversion_worker = True
            try:
                super()._launch(process_obj)  # type: ignore[misc]
            finally:
                _launching.conversion_worker = False

    class _WorkerProcess(multiprocessing.context.ForkServerProcess):
        @staticmethod
        def _Popen(process_obj: Any) -> Any:  # noqa: N802 - multiprocessing's name
            return _WorkerPopen(process_obj)

    class _ForkServerWorkerContext(multiprocessing.context.ForkServerContext):
        Process = _WorkerProcess

    _WorkerContext = _ForkServerWorkerContext


def _init_worker(memory_bytes: int | None, log_level: int, levels: dict[str, int]) -> None:
    """Runs in each new worker: conversion modules loaded, stdout kept clean, memory capped."""
    import importlib

    # An MCP server on stdio speaks its protocol on fd 1: nothing a worker writes may land there.
    with contextlib.suppress(OSError):
        os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    set_levels(levels)  # third-party libraries as quiet as in the parent (zi_isag_tool.logs)
    for name in CONVERSION_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if memory_bytes is not None:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ConversionPool:
    """A small, reusable pool of conversion worker processes, started on first use.

    ``workers`` defaults to the available cores (at most 8); ``memory_mb`` caps each worker's
    address space (None: no cap). ``run`` raises ``ConversionFailed`` when the worker died, ran out
    of memory or passed ``timeout``; exceptions raised by the function itself pass through.
    Not tied to an event loop: one pool can serve calls made on different loops (a ``Pipeline``
    lends its pool to the fetcher of each call). ``close``/``aclose`` stop the workers; a pool that
    is garbage-collected or still open at exit stops them then.
    """

    def __init__(self, workers: int | None = None, *, memory_mb: int | None = 2048) -> None:
        self.workers = workers or min(available_cores(), DEFAULT_MAX_WORKERS)
        self.memory_mb = memory_mb
        self._pool: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def warm(self) -> None:
        """Start the workers in the background, so the first page does not wait for them."""
        if not self._closed and self._pool is None:
            threading.Thread(target=self._quiet_start, name="zi-isag-convert-start", daemon=True).start()

    async def run(self, function: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """``function(*args)`` in a worker. Cancelling the caller stops the worker's CPU work too."""
        for attempt in (1, 2):
            # Starting workers blocks (the first start also boots the fork server): not on the loop.
            pool = self._pool if self._pool is not None else await asyncio.to_thread(self._live_pool)
            try:
                future = pool.schedule(function, args=args, timeout=timeout)
            except RuntimeError:  # the pool broke between two calls (or was closed)
                self._discard(pool)
                continue
            try:
                # Cancelling this await cancels the pebble future, and pebble then kills the worker.
                return await asyncio.wrap_future(future)
            except TimeoutError:
                raise ConversionFailed(
                    "timeout", f"conversion did not finish within {timeout:g} s; stopped"
                ) from None
            except MemoryError:
                raise ConversionFailed(
                    "error", f"conversion ran out of memory (limit {self.memory_mb} MB)"
                ) from None
            except ProcessExpired as exc:
                logger.warning("a conversion worker died (%s); replaced", _exit_reason(exc.exitcode))
                raise ConversionFailed("error", f"conversion crashed (worker {_exit_reason(exc.exitcode)})") from None
            except BrokenProcessPool:
                # pebble gives up on the whole pool when a worker dies before its task is on
                # record; every task in it fails. Retry once on a fresh pool.
                self._discard(pool)
                if attempt == 2:
                    break
        raise ConversionFailed("error", "the conversion workers could not be started")

    def close(self) -> None:
        """Stop every worker now (pending conversions are dropped); blocks until they are gone."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            _stop(pool)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # --- internals -----------------------------------------------------------------------------

    def _live_pool(self) -> Any:
        with self._lock:
            if self._closed:
                raise RuntimeError("the conversion pool is closed")
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool

    def _quiet_start(self) -> None:
        try:
            self._live_pool()
        except Exception:  # noqa: BLE001 - the first run() will retry and report
            logger.debug("conversion workers did not start in the background", exc_info=True)

    def _new_pool(self) -> Any:
        memory = self.memory_mb * 1024 * 1024 if self.memory_mb else None
        pool = ProcessPool(
            max_workers=self.workers,
            max_tasks=TASKS_PER_WORKER,
            initializer=_init_worker,
            initargs=(memory, logging.getLogger().getEffectiveLevel(), third_party_levels()),
            context=_start_context(),
        )
        _ = pool.active  # starts the pool's threads and its workers
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _stop, pool)
        logger.debug("conversion pool started: %d workers", self.workers)
        return pool

    def _discard(self, pool: Any) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        threading.Thread(target=_stop, args=(pool,), name="zi-isag-convert-stop", daemon=True).start()


def _stop(pool: Any) -> None:
    pool.stop()
    try:
        pool.join(timeout=_STOP_WAIT_S)
    except Exception:  # noqa: BLE001 - a pool that will not stop must not block the caller's exit
        logger.warning("conversion workers did not stop cleanly", exc_info=True)
