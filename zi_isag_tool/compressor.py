"""LangChain document compressor: keep only the passages the tag-only extractor selects.

A thin adapter over ``Pipeline.extract_documents``/``aextract_documents``: any retriever's documents
go in, exact sub-passages come out with their original metadata plus ``tags``, ``start``, ``end``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor
from langchain_core.documents import Document as LCDocument
from pydantic import ConfigDict, Field, PrivateAttr

from .pipeline import Pipeline
from .settings import Settings
from .types import Document, Result


class TagExtractCompressor(BaseDocumentCompressor):
    """Compress retrieved documents to the exact passages a tag-only extractor selects.

    Unlike an LLM extractor that rewrites the relevant text, the extractor only names segment tags,
    so the compressed documents are substrings of the originals (``page_content ==
    original.page_content[start:end]``) and cost a handful of output tokens.

    Setup:
        Install ``zi-isag-tool``; the default ``ranker`` extractor runs locally, offline. For
        ``ContextualCompressionRetriever`` also install ``langchain-classic``.

        .. code-block:: bash

            pip install -U zi-isag-tool langchain-classic

    Key init args:
        extractor: str | Extractor
            Extractor backend: ``ranker`` (default), ``embedding``, ``bm25``, ``transformers:PATH``,
            ``openai:MODEL``... or an already built ``Extractor``.
        k: int | None
            Maximum number of passages kept over all documents (``None``: all selected).
        max_tokens: int | None
            Token budget for the passages kept; the best passages are kept first.
        settings: Settings | None
            A full ``zi_isag_tool.Settings``; the fields above override it.

    Instantiate:
        .. code-block:: python

            from zi_isag_tool import TagExtractCompressor

            compressor = TagExtractCompressor(k=4, max_tokens=500)

    Usage:
        .. code-block:: python

            from langchain_core.documents import Document

            docs = [Document(page_content=page_text, metadata={"source": "https://example.org/a"})]
            passages = compressor.compress_documents(docs, "How efficient are heat pumps in the cold?")
            for p in passages:
                print(p.metadata["source"], p.metadata["tags"], p.metadata["start"], p.metadata["end"])

            passages = await compressor.acompress_documents(docs, "...")

    Use within a chain:
        .. code-block:: python

            from langchain_classic.retrievers import ContextualCompressionRetriever

            retriever = ContextualCompressionRetriever(
                base_compressor=compressor,
                base_retriever=vector_store.as_retriever(search_kwargs={"k": 10}),
            )
            chain = (
                {"context": retriever | format_docs, "question": RunnablePassthrough()}
                | prompt
                | llm
                | StrOutputParser()
            )
            chain.invoke("How efficient are heat pumps in the cold?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    extractor: Any = Field(default=None, description="Extractor name (e.g. 'ranker', 'bm25') or an Extractor.")
    k: int | None = Field(default=None, ge=1, description="Maximum number of passages kept.")
    max_tokens: int | None = Field(default=None, ge=1, description="Token budget for the passages kept.")
    settings: Settings | None = Field(default=None, exclude=True, description="Base settings; fields override it.")

    _pipeline: Pipeline = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        # One pipeline per compressor: the extractor loads once. A name is a settings override.
        self._pipeline = Pipeline(self.settings, extractor=self.extractor)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline every call of this compressor goes through."""
        return self._pipeline

    def compress_documents(
        self, documents: Sequence[LCDocument], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[LCDocument]:
        """The passages of ``documents`` that answer ``query``, as documents."""
        if not documents:
            return []
        inputs = _inputs(documents)
        result = self._pipeline.extract_documents(query, inputs, max_tokens=self.max_tokens, max_passages=self.k)
        return _outputs(result, documents)

    async def acompress_documents(
        self, documents: Sequence[LCDocument], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[LCDocument]:
        """Async ``compress_documents``."""
        if not documents:
            return []
        inputs = _inputs(documents)
        result = await self._pipeline.aextract_documents(
            query, inputs, max_tokens=self.max_tokens, max_passages=self.k
        )
        return _outputs(result, documents)


def _inputs(documents: Sequence[LCDocument]) -> list[Document]:
    # Positional ids, not the documents' own sources: several chunks of one page may share a source,
    # and each passage must map back to exactly one original document.
    return [
        Document(source=str(i), text=doc.page_content, title=str(doc.metadata.get("title") or ""))
        for i, doc in enumerate(documents)
    ]


def _outputs(result: Result, documents: Sequence[LCDocument]) -> list[LCDocument]:
    out: list[LCDocument] = []
    for passage in result.passages:
        original = documents[int(passage.source)]
        metadata = {**original.metadata, "tags": list(passage.tags), "start": passage.start, "end": passage.end}
        out.append(LCDocument(page_content=passage.text, metadata=metadata))
    return out
