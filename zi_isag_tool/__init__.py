"""zi-isag-tool: zero-index internet-search-augmented generation with a tag-only extractor.

    from zi_isag_tool import Pipeline, ZiIsagRetriever, TagExtractCompressor, ZiIsagWebExtract
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    ExtractorError,
    InputError,
    MissingApiKeyError,
    SearchError,
    SearchNotConfiguredError,
    ZiIsagError,
)
from .settings import Settings
from .types import Document, Link, Passage, Result, SourceResult, TokenUsage

if TYPE_CHECKING:
    from .compressor import TagExtractCompressor
    from .pipeline import Pipeline
    from .retriever import ZiIsagRetriever
    from .tool import ZiIsagWebExtract

try:
    __version__ = metadata.version("zi-isag-tool")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "Pipeline",
    "ZiIsagRetriever",
    "TagExtractCompressor",
    "ZiIsagWebExtract",
    "Settings",
    "Document",
    "Link",
    "Passage",
    "Result",
    "SourceResult",
    "TokenUsage",
    "ZiIsagError",
    "ConfigError",
    "InputError",
    "ExtractorError",
    "SearchError",
    "SearchNotConfiguredError",
    "MissingApiKeyError",
    "__version__",
]

_LAZY = {
    "Pipeline": ".pipeline",
    "ZiIsagRetriever": ".retriever",
    "TagExtractCompressor": ".compressor",
    "ZiIsagWebExtract": ".tool",
}


def __getattr__(name: str) -> Any:
    # Heavy modules (torch via extractors, langchain) load only when asked for.
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zi_isag_tool' has no attribute {name!r}")
