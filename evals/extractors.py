"""Extractor specs for the evals: ``full``, ``lead``, ``bm25``, ``embedding``, ``smollm2``,
``transformers:PATH`` and ``openai:MODEL`` (with ``--base-url``), built through the project's registry.

Each spec is loaded once per run and reused by every suite.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from zi_isag_tool.errors import ConfigError
from zi_isag_tool.extractors import Extractor, get_extractor
from zi_isag_tool.settings import Settings
from zi_isag_tool.tokens import TokenCounter, default_counter

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_EXTRACTORS", "split_specs", "ExtractorPool", "extractor_settings", "counter_of"]

DEFAULT_EXTRACTORS: tuple[str, ...] = ("full", "lead", "bm25", "embedding", "hybrid", "ranker")


def split_specs(values: Iterable[str] | None) -> list[str]:
    """``["bm25,embedding", "full"]`` -> ``["bm25", "embedding", "full"]`` (order kept, duplicates dropped).

    A comma inside a ``transformers:`` path would be ambiguous; such paths must not contain commas.
    """
    out: list[str] = []
    for value in values or ():
        for spec in value.split(","):
            spec = spec.strip()
            if spec and spec not in out:
                out.append(spec)
    return out


def extractor_settings(
    spec: str, *, base_url: str | None = None, window_tokens: int | None = None, **overrides: Any
) -> Settings:
    """Settings for one spec: ``--base-url`` goes to the openai backend, ``--window-tokens`` to all."""
    values: dict[str, Any] = {"extractor": spec, **overrides}
    if window_tokens is not None:
        values["window_tokens"] = window_tokens
    name, _, arg = spec.partition(":")
    if name.strip().lower() == "openai":
        if base_url:
            values["openai_base_url"] = base_url
        if arg.strip():
            values["openai_model"] = arg.strip()
    try:
        return Settings(**values)
    except Exception as exc:  # pydantic's ValidationError: say which option was wrong
        raise ConfigError(f"Invalid settings for extractor {spec!r}: {exc}") from exc


def counter_of(extractor: Extractor) -> TokenCounter:
    """The tokenizer that sizes the extractor's windows: its own, or o200k_base."""
    return extractor.token_counter or default_counter()


@dataclass
class ExtractorPool:
    """Extractors by spec, loaded on first use; a spec that fails to load is remembered as failed."""

    base_url: str | None = None
    window_tokens: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _loaded: dict[str, Extractor] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)

    def get(self, spec: str) -> Extractor:
        if spec in self._failed:
            raise ConfigError(self._failed[spec])
        if spec not in self._loaded:
            settings = extractor_settings(
                spec, base_url=self.base_url, window_tokens=self.window_tokens, **self.overrides
            )
            try:
                self._loaded[spec] = get_extractor(spec, settings)
            except Exception as exc:
                self._failed[spec] = f"could not load extractor {spec!r}: {exc}"
                raise
            logger.info("Loaded extractor %s", spec)
        return self._loaded[spec]

    def failure(self, spec: str) -> str | None:
        return self._failed.get(spec)
