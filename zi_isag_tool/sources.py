"""Turn what the caller named (URLs, local paths, search hits, raw text) into ``Document``s.

Every source ends as a ``SourceResult``; a bad source never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import InputError
from .settings import Settings
from .types import Document, SourceResult

if TYPE_CHECKING:
    from .web.convert import ConvertedPage

logger = logging.getLogger(__name__)

SourceKind = Literal["url", "file", "unsupported"]

# Query parameters that name who sent the visitor, not what page they see.
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")
_TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid",
        "igshid", "igsh", "li_fat_id", "srsltid", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi",
        "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "vero_conv", "ncid", "cmpid", "ocid",
        "amp",  # ?amp / ?amp=1: the same article in its AMP layout
    }
)  # fmt: skip
_DEFAULT_PORTS = {"http": 80, "https": 443}


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


def local_file_path(source: str, settings: Settings) -> tuple[Path | None, SourceResult | None]:
    """The path to read for ``source``, or why it may not or cannot be read."""
    path = Path(source).expanduser()
    try:
        _check_local_allowed(path, settings)
        if not path.is_file():
            return None, SourceResult(source, "error", "file not found")
        if path.stat().st_size > settings.max_page_bytes:
            return None, SourceResult(source, "too_large", f"file is larger than {settings.max_page_bytes} bytes")
    except PermissionError as exc:
        return None, SourceResult(source, "blocked", str(exc))
    except (OSError, ValueError) as exc:
        logger.warning("could not read %s: %s", source, exc)
        return None, SourceResult(source, "error", f"could not read file ({type(exc).__name__})")
    return path, None


def local_file_failure(source: str, exc: Exception) -> SourceResult | None:
    """The status of a local file whose conversion raised ``exc``; None when ``exc`` is unexpected."""
    from .web.convert_pool import ConversionFailed

    if isinstance(exc, ConversionFailed):
        return SourceResult(source, exc.status, exc.message)
    if isinstance(exc, PermissionError):
        return SourceResult(source, "blocked", str(exc))
    if isinstance(exc, InputError):
        return SourceResult(source, "unsupported", str(exc))
    if isinstance(exc, (OSError, UnicodeError, ValueError)):
        logger.warning("could not read %s: %s", source, exc)
        return SourceResult(source, "error", f"could not read file ({type(exc).__name__})")
    return None


def local_document(source: str, path: Path, page: ConvertedPage) -> tuple[Document, SourceResult]:
    title = page.title or path.name
    document = Document(source=source, text=page.text, title=title, links=page.links)
    return document, SourceResult(source, "ok", title=title)


def load_local_file(source: str, settings: Settings) -> tuple[Document | None, SourceResult]:
    """Read and convert one local file in this process; failures become a status, never an exception.

    The pipeline converts in its fetcher's worker processes instead (``Fetcher.convert_local_file``)."""
    from .web.convert import ConvertOptions, convert_file

    path, refused = local_file_path(source, settings)
    if path is None:
        assert refused is not None
        return None, refused
    try:
        page = convert_file(path, options=ConvertOptions.from_settings(settings))
    except Exception as exc:
        failure = local_file_failure(source, exc)
        if failure is None:
            raise
        return None, failure
    return local_document(source, path, page)


def normalize_url(url: str) -> str:
    """``url`` as a key for "the same page": scheme and host lower-cased, default port, fragment and
    tracking parameters (``utm_*``, ``fbclid``, ``gclid``, ...) dropped, empty path as ``/``.

    The key only compares URLs; the page is fetched at the URL as given.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return text
    host = parts.hostname.rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if parts.username is not None:
        credentials = parts.username + (f":{parts.password}" if parts.password is not None else "")
        host = f"{credentials}@{host}"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _TRACKING_PARAMS and not key.lower().startswith(_TRACKING_PREFIXES)
    ]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))


def source_key(source: str) -> str:
    """What makes two sources the same: the normalised URL of a URL, the path of a file."""
    text = source.strip()
    return normalize_url(text) if classify(text).kind == "url" else text


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
