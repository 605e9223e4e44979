"""The extractor protocol: ``(query, tagged windows) -> selected tag ids per window``.

Backends never rewrite text; they only say which window-local tags to keep. A backend must not
raise because a model answered badly: it returns ``WindowSelection(failed=True, error=...)`` for that
window. It may raise ``ExtractorError`` when it cannot run at all (model missing, endpoint down for
every window).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

from ..tokens import TokenCounter
from ..types import TaggedWindow, WindowSelection

_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("zi_isag_extraction_deadline", default=None)
"""(monotonic deadline, the budget in seconds it came from) of the extraction in progress."""


@contextlib.contextmanager
def extraction_deadline(seconds: float | None) -> Iterator[float | None]:
    """Within this block (and the tasks it starts) extraction should end by ``time.monotonic() +
    seconds``, or by an enclosing block's earlier deadline; yields that deadline (None: no limit).

    The pipeline sets it once per call around its whole extract stage, however the windows are
    grouped or sent; backends that can stop window by window read it with ``extraction_deadline_left``.
    """
    outer = _DEADLINE.get()
    current = None if seconds is None else (time.monotonic() + seconds, seconds)
    if outer is not None and (current is None or outer[0] < current[0]):
        current = outer
    token = _DEADLINE.set(current)
    try:
        yield None if current is None else current[0]
    finally:
        _DEADLINE.reset(token)


def extraction_deadline_left() -> float | None:
    """Seconds left before the current extraction deadline (may be <= 0); None when there is none."""
    current = _DEADLINE.get()
    return None if current is None else current[0] - time.monotonic()


def extraction_budget() -> float | None:
    """The budget, in seconds, that the current extraction deadline came from (for messages)."""
    current = _DEADLINE.get()
    return None if current is None else current[1]


@runtime_checkable
class Extractor(Protocol):
    name: str
    """Registry name, e.g. ``embedding`` or ``transformers``."""

    @property
    def token_counter(self) -> TokenCounter | None:
        """The backend's own tokenizer, when it has one (used for windows and accounting)."""
        ...

    @property
    def window_tokens(self) -> int:
        """Largest tagged window (in ``token_counter`` tokens) the backend wants to see."""
        ...

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        """One ``WindowSelection`` per window, in order."""
        ...

    async def aextract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        ...


class SyncExtractor:
    """Base for CPU-bound backends: ``aextract`` runs ``extract`` off the event loop."""

    name: str = "base"
    _window_tokens: int = 1024

    @property
    def token_counter(self) -> TokenCounter | None:
        return None

    @property
    def window_tokens(self) -> int:
        return self._window_tokens

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        raise NotImplementedError

    async def aextract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        # CPU work (model forward passes), not I/O: a worker thread keeps the loop responsive.
        return await asyncio.to_thread(self.extract, query, windows)
