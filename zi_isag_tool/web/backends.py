"""Search backends by name: what ``Settings.search`` (``tavily``, ``searxng``, ``tavily,searxng``) builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SearchError, SearchNotConfiguredError
from .search import SEARCH_HELP, SearchBackend, TavilySearch
from .searxng import SearXNGSearch

if TYPE_CHECKING:
    from ..settings import Settings

FACTORIES: dict[str, Callable[[Settings], SearchBackend]] = {
    "tavily": TavilySearch.from_settings,
    "searxng": SearXNGSearch.from_settings,
}
"""One entry per name in ``settings.SEARCH_BACKEND_NAMES`` (a test holds the two together)."""


@dataclass(frozen=True, slots=True)
class NamedBackend:
    """One configured backend, or why it could not be built (a missing key or URL)."""

    name: str
    backend: SearchBackend | None
    error: SearchError | None = None

    @property
    def reason(self) -> str:
        """Why it cannot run, in one sentence (the error's first; the rest is the how-to)."""
        return str(self.error).split(". ", 1)[0] if self.error else ""


def build_backends(settings: Settings) -> list[NamedBackend]:
    """The backends named in ``settings.search``, in order; one that lacks its key or URL carries the error.

    Raises the backend's own ``SearchNotConfiguredError`` when only one backend is named and it cannot
    run, and one listing every way to search when none of several can.
    """
    built: list[NamedBackend] = []
    for name in settings.search_names:
        try:
            built.append(NamedBackend(name, FACTORIES[name](settings)))
        except SearchError as exc:
            built.append(NamedBackend(name, None, exc))
    usable = [b for b in built if b.backend is not None]
    if not usable:
        if len(built) == 1 and built[0].error is not None:
            raise built[0].error
        raise SearchNotConfiguredError(
            f"None of the search backends {settings.search} can run: "
            + "; ".join(f"{b.name}: {b.reason}" for b in built)
            + ". "
            + SEARCH_HELP
        )
    return built
