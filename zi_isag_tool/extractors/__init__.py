"""Extractor backends, chosen by name.

Spec strings: ``ranker`` (default: a learned scorer over MiniLM and BM25 signals in context),
``embedding``, ``bm25``, ``hybrid`` (embedding and BM25 together), ``lead``,
``full``, ``smollm2`` (the untrained base), ``smollm2-tags`` (SmolLM2 + the tag-only LoRA adapter
shipped in this package),
``transformers`` / ``transformers:PATH``, ``openai`` / ``openai:MODEL``. Backends are imported
lazily so that picking ``bm25`` never pays for loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import Extractor, SyncExtractor

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["Extractor", "SyncExtractor", "get_extractor", "EXTRACTOR_NAMES"]

EXTRACTOR_NAMES = (
    "ranker", "embedding", "bm25", "hybrid", "lead", "full", "smollm2", "smollm2-tags", "transformers", "openai",
)  # fmt: skip


def get_extractor(spec: str, settings: Settings | None = None) -> Extractor:
    """Build the backend named by ``spec`` (``name`` or ``name:argument``), configured by ``settings``."""
    from ..settings import Settings

    settings = settings or Settings()
    name, _, arg = spec.strip().partition(":")
    name = name.strip().lower()
    arg = arg.strip()
    if name == "ranker":
        from .ranker import RankerExtractor

        return RankerExtractor.from_settings(settings)
    if name == "embedding":
        from .embedding import EmbeddingExtractor

        return EmbeddingExtractor.from_settings(settings)
    if name == "bm25":
        from .lexical import BM25Extractor

        return BM25Extractor.from_settings(settings)
    if name == "hybrid":
        from .hybrid import HybridExtractor

        return HybridExtractor.from_settings(settings)
    if name == "lead":
        from .lexical import LeadExtractor

        return LeadExtractor.from_settings(settings)
    if name == "full":
        from .lexical import FullExtractor

        return FullExtractor.from_settings(settings)
    if name in ("transformers", "smollm2", "smollm2-tags"):
        from .transformers_lm import TransformersExtractor

        path = arg or (name if name != "transformers" else settings.model_path)
        if not path:
            raise ConfigError(
                "The transformers extractor needs a model: use 'transformers:PATH' (a local model folder, "
                "GGUF file or LoRA adapter), set ZI_ISAG_MODEL_PATH, or use 'smollm2'."
            )
        return TransformersExtractor.from_settings(settings, model_path=path)
    if name == "openai":
        from .openai_compat import OpenAIExtractor

        model = arg or settings.openai_model
        if not model:
            raise ConfigError(
                "The openai extractor needs a model name: use 'openai:MODEL' or set ZI_ISAG_OPENAI_MODEL "
                "(and ZI_ISAG_OPENAI_BASE_URL for vLLM/SGLang/Ollama endpoints)."
            )
        return OpenAIExtractor.from_settings(settings, model=model)
    raise ConfigError(f"Unknown extractor {spec!r}; choose one of: {', '.join(EXTRACTOR_NAMES)} (e.g. 'transformers:PATH').")
