"""The extractor protocol: ``(query, tagged windows) -> selected tag ids per window``.

Backends never rewrite text; they only say which window-local tags to keep. A backend must not
raise because a model answered badly: it returns ``WindowSelection(failed=True, error=...)`` for that
window. It may raise ``ExtractorError`` when it cannot run at all (model missing, endpoint down for
every window).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..tokens import TokenCounter
from ..types import TaggedWindow, WindowSelection


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
