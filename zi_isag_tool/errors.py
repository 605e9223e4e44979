"""One exception hierarchy for the whole project: messages say what was wrong and what to do."""

from __future__ import annotations


class ZiIsagError(Exception):
    """Root of every error raised on purpose by zi-isag-tool."""


class ConfigError(ZiIsagError, ValueError):
    """A setting or argument is invalid (bad extractor name, missing model path, bad number...)."""


class InputError(ZiIsagError, ValueError):
    """The caller's input cannot be processed (empty query, unreadable file...)."""


class ExtractorError(ZiIsagError):
    """An extractor backend could not be loaded or could not run at all."""


class SearchError(ZiIsagError):
    """The search backend failed (bad key, quota, unreachable)."""


class SearchNotConfiguredError(SearchError, ConfigError):
    """No search backend can run: none is configured well enough (a key or an instance URL is missing)."""


class MissingApiKeyError(SearchNotConfiguredError):
    """A search backend that needs a key has none."""
