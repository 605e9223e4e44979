"""Turn what the caller named (URLs, local paths, search hits, raw text) into ``Document``s.

Every source ends as a ``SourceResult``; a bad source never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from .errors import InputError
from .settings import Settings
from .types import Document, SourceResult

logger = logging.getLogger(__name__)

SourceKind = Literal["url", "file", "unsupported"]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One source as the caller named it, classified."""

    source: str
    kind: SourceKind
    reason: str | None = None


def classify(source: str) -> SourceSpec:
    """``http(s)`` URLs are fetched; anything else with a scheme is refused; the rest is a local path."""
    text = source.strip()
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return SourceSpec(text, "url")
    # A one-letter "scheme" is a Windows drive (C:\...), not a URL.
    if scheme and len(scheme) > 1 and "://" in text:
        return SourceSpec(text, "unsupported", f"scheme {scheme!r} is not supported; use http(s) URLs or local paths")
    return SourceSpec(text, "file")


def _check_local_allowed(path: Path, settings: Settings) -> None:
    if not settings.allow_local_files:
        raise PermissionError("local files are not allowed here; give http(s) URLs")
    if settings.local_roots:
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root.resolve()) for root in settings.local_roots):
            raise PermissionError("this path is outside the allowed directories")


def load_local_file(source: str, settings: Settings) -> tuple[Document | None, SourceResult]:
    """Read and convert one local file; failures become a status, never an exception."""
    from .web.convert import ConvertOptions, convert_file

    path = Path(source).expanduser()
    try:
        _check_local_allowed(path, settings)
        if not path.is_file():
            return None, SourceResult(source, "error", "file not found")
        if path.stat().st_size > settings.max_page_bytes:
            return None, SourceResult(source, "too_large", f"file is larger than {settings.max_page_bytes} bytes")
        page = convert_file(path, options=ConvertOptions.from_settings(settings))
    except PermissionError as exc:
        return None, SourceResult(source, "blocked", str(exc))
    except InputError as exc:
        return None, SourceResult(source, "unsupported", str(exc))
    except (OSError, UnicodeError, ValueError) as exc:
        logger.warning("could not read %s: %s", source, exc)
        return None, SourceResult(source, "error", f"could not read file ({type(exc).__name__})")
    title = page.title or path.name
    document = Document(source=source, text=page.text, title=title, links=page.links)
    return document, SourceResult(source, "ok", title=title)


def dedupe(sources: Sequence[str]) -> list[str]:
    """Keep the first occurrence of each source, dropping blanks."""
    seen: set[str] = set()
    out: list[str] = []
    for source in sources:
        key = source.strip()
        if key and key not in seen:
            seen.add(key)
            out.append(key)
    return out
