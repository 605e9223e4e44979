"""TagExtractCompressor: exact sub-passages of any retriever's documents, sync and async.

Used inside langchain-classic's ContextualCompressionRetriever over a small in-memory retriever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.extractors import pinned_embedding
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from zi_isag_tool import InputError, TagExtractCompressor
from zi_isag_tool.cli import DEMO_QUERY, example_sources

pytestmark = pytest.mark.slow

ContextualCompressionRetriever = pytest.importorskip(
    "langchain_classic.retrievers", reason="ContextualCompressionRetriever lives in langchain-classic"
).ContextualCompressionRetriever


class ListRetriever(BaseRetriever):
    """Returns its documents whatever the query (stands in for a vector store)."""

    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return list(self.docs)


def _example_docs() -> list[Document]:
    docs = []
    for i, path in enumerate(example_sources()):
        if path.endswith(".html"):
            continue  # raw HTML is not what a text retriever returns
        text = Path(path).read_text(encoding="utf-8")
        docs.append(Document(page_content=text, metadata={"source": path, "title": Path(path).stem, "rank": i}))
    return docs


@pytest.fixture(scope="module")
def compressor() -> TagExtractCompressor:
    return TagExtractCompressor(extractor=pinned_embedding())


def _check(originals: list[Document], compressed: list[Document]) -> None:
    assert compressed
    by_source = {d.metadata["source"]: d for d in originals}
    for doc in compressed:
        original = by_source[doc.metadata["source"]]
        assert original.page_content[doc.metadata["start"] : doc.metadata["end"]] == doc.page_content
        assert doc.metadata["tags"] and all(isinstance(t, int) for t in doc.metadata["tags"])
        # Original metadata kept, tags/start/end added.
        assert {k: doc.metadata[k] for k in original.metadata} == original.metadata
        assert set(doc.metadata) == set(original.metadata) | {"tags", "start", "end"}


def test_inside_contextual_compression_retriever(compressor: TagExtractCompressor) -> None:
    docs = _example_docs()
    retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=ListRetriever(docs=docs))
    compressed = retriever.invoke(DEMO_QUERY)
    _check(docs, compressed)
    assert not any("sourdough" in d.metadata["source"] for d in compressed)
    assert sum(len(d.page_content) for d in compressed) < sum(len(d.page_content) for d in docs) / 2


async def test_async_inside_contextual_compression_retriever(compressor: TagExtractCompressor) -> None:
    docs = _example_docs()
    retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=ListRetriever(docs=docs))
    compressed = await retriever.ainvoke("How often should a sourdough starter be fed?")
    _check(docs, compressed)
    assert any("sourdough" in d.metadata["source"] for d in compressed)


def test_chunks_sharing_a_source_map_back_to_their_own_document(compressor: TagExtractCompressor) -> None:
    text = next(d for d in _example_docs() if "heat-pump" in d.metadata["source"]).page_content
    half = len(text) // 2
    chunks = [
        Document(page_content=text[:half], metadata={"source": "guide", "chunk": 0}),
        Document(page_content=text[half:], metadata={"source": "guide", "chunk": 1}),
    ]
    compressed = compressor.compress_documents(chunks, DEMO_QUERY)
    assert compressed
    for doc in compressed:
        original = chunks[doc.metadata["chunk"]]
        assert original.page_content[doc.metadata["start"] : doc.metadata["end"]] == doc.page_content


async def test_limits_empty_input_and_bad_query(compressor: TagExtractCompressor) -> None:
    small = TagExtractCompressor(extractor=compressor.pipeline.extractor, k=1, max_tokens=80)
    docs = _example_docs()
    out = await small.acompress_documents(docs, DEMO_QUERY)
    assert len(out) == 1 and small.pipeline.counter.count(out[0].page_content) <= 80
    assert small.compress_documents([], DEMO_QUERY) == []
    assert TagExtractCompressor(extractor="bm25").pipeline.settings.extractor == "bm25"
    with pytest.raises(InputError):
        small.compress_documents(docs, "  ")


def test_documents_without_metadata(compressor: TagExtractCompressor) -> None:
    text = next(d for d in _example_docs() if "heat-pump" in d.metadata["source"]).page_content
    out = compressor.compress_documents([Document(page_content=text)], DEMO_QUERY)
    assert out and all(set(d.metadata) == {"tags", "start", "end"} for d in out)
