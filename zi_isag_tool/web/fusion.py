"""Mixed ranking: several backends' ranked hits -> one ranking, by reciprocal-rank fusion.

ZI-ISAG re-ranks the results of several search engines so that no one engine's bias decides what is
read. RRF (Cormack, Clarke and Büttcher, SIGIR 2009) needs no comparable scores, only ranks: a hit's
fused score is ``sum over rankings of 1 / (k + rank)``, rank counted from 1, with ``k = 60`` by default.
The same page found by several backends (same URL once normalised) is one hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

from courlan import normalize_url

from .search import SearchHit

DEFAULT_RRF_K = 60


def url_key(url: str) -> str:
    """A key under which the URLs of one page compare equal.

    courlan lower-cases the host, drops default ports, sorts the query and strips tracking
    parameters (``utm_*``...); on top of that the scheme (http/https), a leading ``www.``, the
    fragment and a trailing slash do not tell pages apart.
    """
    try:
        normal = normalize_url(url.strip(), trailing_slash=False)
    except ValueError:
        normal = url.strip()
    parts = urlsplit(normal)
    host = parts.netloc.lower().removeprefix("www.")
    path = parts.path.rstrip("/")
    return urlunsplit(("", host, path, parts.query, ""))


@dataclass(slots=True)
class _Fused:
    hit: SearchHit
    score: float = 0.0
    best_rank: int = 0
    first_ranking: int = 0
    engines: list[str] = field(default_factory=list)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[SearchHit]], *, k: int = DEFAULT_RRF_K
) -> list[SearchHit]:
    """Merge ranked hit lists (each best first) into one, best first.

    Each returned hit is the first one seen for its page, with its ``score`` replaced by the fused
    score, ``engines`` the union over the backends that found it, and ``content``/``raw_content``/
    ``published`` filled from the other copies when the first lacks them (a copy with raw content
    saves a fetch). A page listed twice by one backend counts once, at its better rank. Ties go to the
    better single rank, then to the earlier ranking.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    fused: dict[str, _Fused] = {}
    for ranking_index, ranking in enumerate(rankings):
        seen: set[str] = set()
        for rank, hit in enumerate(ranking, start=1):
            key = url_key(hit.url)
            if key in seen:
                continue
            seen.add(key)
            entry = fused.get(key)
            if entry is None:
                entry = fused[key] = _Fused(hit, best_rank=rank, first_ranking=ranking_index)
            else:
                entry.hit = _filled(entry.hit, hit)
                entry.best_rank = min(entry.best_rank, rank)
            entry.score += 1.0 / (k + rank)
            entry.engines.extend(e for e in hit.engines if e not in entry.engines)
    order = sorted(fused.values(), key=lambda e: (-e.score, e.best_rank, e.first_ranking))
    return [replace(e.hit, score=e.score, engines=tuple(e.engines)) for e in order]


def _filled(first: SearchHit, other: SearchHit) -> SearchHit:
    return replace(
        first,
        title=first.title or other.title,
        content=first.content or other.content,
        raw_content=first.raw_content or other.raw_content,
        published=first.published or other.published,
    )
