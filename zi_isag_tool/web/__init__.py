"""Web access: search backends, the guarded fetcher, conversion to markdown, cache and robots.txt."""

from .fetch import FetchedPage, Fetcher
from .fusion import reciprocal_rank_fusion
from .search import SearchBackend, SearchHit, SearchHits, TavilySearch
from .searxng import SearXNGSearch

__all__ = [
    "FetchedPage",
    "Fetcher",
    "SearchBackend",
    "SearchHit",
    "SearchHits",
    "SearXNGSearch",
    "TavilySearch",
    "reciprocal_rank_fusion",
]
