"""LangChain retriever: fresh web passages for a query, selected by the tag-only extractor.

A thin adapter over ``Pipeline``: the retriever's fields become ``Settings``, and every call is one
``Pipeline.run``/``arun``. One pipeline per retriever instance, so the extractor model loads once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.utils import from_env, secret_from_env
from pydantic import Field, PrivateAttr, SecretStr

from .errors import ExtractorError, InputError
from .pipeline import Pipeline
from .settings import Settings
from .types import Result

# Call-time keyword arguments accepted by invoke/ainvoke, on top of the query.
_CALL_ARGS = frozenset({"k", "max_tokens", "sources", "max_results"})


class ZiIsagRetriever(BaseRetriever):
    """Exact passages from web pages (or given URLs/files), selected by a tag-only extractor.

    The extractor returns tag ids only, so the passages are the source text byte for byte; each
    ``Document`` is one passage with its provenance and the call's token accounting.

    Setup:
        Install ``zi-isag-tool``. Web search uses Tavily (``export TAVILY_API_KEY="tvly-..."``) or,
        with no key, a SearXNG instance you run (``ZI_ISAG_SEARCH=searxng``,
        ``ZI_ISAG_SEARXNG_URL=...``); or pass ``sources`` (http(s) URLs or local
        ``.html``/``.md``/``.txt``/``.pdf`` files) and nothing is searched. Other settings come from
        ``ZI_ISAG_*`` variables.

        .. code-block:: bash

            pip install -U zi-isag-tool
            export TAVILY_API_KEY="tvly-..."

    Key init args:
        k: int | None
            Maximum number of passages returned (``None``: all that the extractor selects).
            Overridable per call: ``retriever.invoke(query, k=2)``.
        max_tokens: int | None
            Token budget for the passages returned; the best passages are kept first.
        sources: list[str] | None
            URLs or local paths to read instead of searching the web.
        max_results: int | None
            Number of search results to read when searching (1-20).
        extractor: str | Extractor
            Extractor backend: ``embedding`` (default, runs locally), ``bm25``, ``transformers:PATH``,
            ``openai:MODEL``... or an already built ``Extractor``.
        search: str
            Search backend(s): ``tavily``, ``searxng`` or ``tavily,searxng`` (merged by rank fusion);
            ``search_backend`` takes a ``SearchBackend`` object instead.
        tavily_api_key: SecretStr | None
            Tavily API key; read from ``TAVILY_API_KEY`` when not given.
        searxng_url: str | None
            A SearXNG instance with its JSON format on; read from ``ZI_ISAG_SEARXNG_URL``.
        settings: Settings | None
            A full ``zi_isag_tool.Settings``; the fields above override it.

    Instantiate:
        .. code-block:: python

            from zi_isag_tool import ZiIsagRetriever

            retriever = ZiIsagRetriever(k=3, max_tokens=600)

            # Offline: read given pages instead of searching.
            from zi_isag_tool.cli import example_sources

            local = ZiIsagRetriever(k=3, sources=example_sources())

    Usage:
        .. code-block:: python

            docs = local.invoke("How efficient are heat pumps when it is very cold outside?")
            for doc in docs:
                print(doc.metadata["source"], doc.metadata["tags"], doc.page_content[:80])
            print(docs[0].metadata["tokens"])  # {'content': ..., 'prompt': ..., 'output': ..., 'kept': ...}

            docs = await local.ainvoke("Why feed a sourdough starter?", k=1)

    Use within a chain:
        .. code-block:: python

            from langchain_core.output_parsers import StrOutputParser
            from langchain_core.prompts import ChatPromptTemplate
            from langchain_core.runnables import RunnablePassthrough

            prompt = ChatPromptTemplate.from_template(
                "Answer the question using only the context.\\n\\n"
                "Context:\\n{context}\\n\\nQuestion: {question}"
            )

            def format_docs(docs):
                return "\\n\\n".join(f"[{d.metadata['source']}]\\n{d.page_content}" for d in docs)

            chain = (
                {"context": retriever | format_docs, "question": RunnablePassthrough()}
                | prompt
                | llm  # any chat model, e.g. ChatOpenAI(model="gpt-4o-mini")
                | StrOutputParser()
            )
            chain.invoke("How efficient are heat pumps when it is very cold outside?")
    """

    k: int | None = Field(default=5, ge=1, description="Maximum number of passages (None: no limit).")
    max_tokens: int | None = Field(default=None, ge=1, description="Token budget for the passages.")
    sources: list[str] | None = Field(default=None, description="URLs or local paths to read instead of searching.")
    max_results: int | None = Field(default=None, ge=1, le=20, description="Search results to read.")
    extractor: Any = Field(default=None, description="Extractor name (e.g. 'embedding', 'bm25') or an Extractor.")
    search: str | None = Field(default=None, description="Search backend name (default: settings, 'tavily').")
    search_backend: Any = Field(default=None, exclude=True, description="A SearchBackend object to search with.")
    tavily_api_key: SecretStr | None = Field(default_factory=secret_from_env("TAVILY_API_KEY", default=None))
    searxng_url: str | None = Field(default_factory=from_env("ZI_ISAG_SEARXNG_URL", default=None))
    settings: Settings | None = Field(default=None, exclude=True, description="Base settings; fields override it.")

    _pipeline: Pipeline = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        overrides: dict[str, Any] = {}
        if self.tavily_api_key is not None:
            overrides["tavily_api_key"] = self.tavily_api_key
        if self.searxng_url is not None:
            overrides["searxng_url"] = self.searxng_url
        if self.max_results is not None:
            overrides["max_results"] = self.max_results
        # Built here, not per call: the extractor (a model, for most backends) then loads once.
        # ``extractor`` may be a name (a settings override) or an already built Extractor.
        # ``search``: a SearchBackend object, else backend names (a settings override).
        search = self.search_backend if self.search_backend is not None else self.search
        self._pipeline = Pipeline(self.settings, extractor=self.extractor, search=search, **overrides)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline every call of this retriever goes through."""
        return self._pipeline

    def _call_args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - _CALL_ARGS
        if unknown:
            raise InputError(
                f"Unknown argument(s) {sorted(unknown)} for ZiIsagRetriever; use {sorted(_CALL_ARGS)}."
            )
        return {
            "sources": _sources_arg(kwargs.get("sources", self.sources)),
            "max_passages": kwargs.get("k", self.k),
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            "max_results": kwargs.get("max_results", self.max_results),
        }

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        args = self._call_args(kwargs)
        return to_documents(_checked(self._pipeline.run(query, args.pop("sources"), **args)))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        args = self._call_args(kwargs)
        return to_documents(_checked(await self._pipeline.arun(query, args.pop("sources"), **args)))


def _checked(result: Result) -> Result:
    """An extraction in which every window failed is an error, not an empty answer."""
    if result.extraction_failed:
        details = "; ".join(result.warnings) or "no details"
        raise ExtractorError(
            f"Extraction failed for every window ({details}). Check the extractor (for the openai "
            "backend: ZI_ISAG_OPENAI_BASE_URL, the model name, the server's health) and try again."
        )
    return result


def to_documents(result: Result) -> list[LCDocument]:
    """One LangChain ``Document`` per passage; every document carries the call's token accounting
    and how extraction went (``failed_windows``, ``dropped_tags``, ``warnings``)."""
    tokens = result.tokens.to_dict()
    docs: list[LCDocument] = []
    for passage in result.passages:
        metadata: dict[str, Any] = {
            "source": passage.source,
            "title": passage.title,
            "tags": list(passage.tags),
            "start": passage.start,
            "end": passage.end,
            "tokens": dict(tokens),
            "failed_windows": result.failed_windows,
            "dropped_tags": result.dropped_tags,
            "warnings": list(result.warnings),
        }
        if passage.score is not None:
            metadata["score"] = passage.score
        docs.append(
            LCDocument(page_content=passage.text, metadata=metadata, id=f"{passage.source}#{passage.start}-{passage.end}")
        )
    return docs


def _sources_arg(sources: Sequence[str] | str | None) -> list[str] | None:
    if not sources:
        return None
    return [sources] if isinstance(sources, str) else list(sources)
