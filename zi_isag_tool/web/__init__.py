"""Web access: search backends, the guarded fetcher, conversion to markdown, cache and robots.txt."""

from .fetch import FetchedPage, Fetcher
from .search import SearchBackend, SearchHit, TavilySearch

__all__ = ["FetchedPage", "Fetcher", "SearchBackend", "SearchHit", "TavilySearch"]
