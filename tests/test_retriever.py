"""ZiIsagRetriever: LangChain's standard retriever tests, metadata, per-call k, chains, errors, secrets.

Offline: the sources are the bundled example pages (local files) and the extractor is the embedded
MiniLM model, loaded once per process.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from fixtures.extractors import pinned_embedding
from fixtures.web.web_servers import LocalServer, SearXNGStub, searxng_result, send
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_tests.integration_tests import RetrieversIntegrationTests

from evals.bench_adapters import PageServer
from zi_isag_tool import ExtractorError, InputError, MissingApiKeyError, Settings, ZiIsagRetriever
from zi_isag_tool.cli import DEMO_QUERY, example_sources
from zi_isag_tool.extractors.openai_compat import OpenAIExtractor

pytestmark = pytest.mark.slow

EMBEDDED = pinned_embedding()


class TestZiIsagRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[ZiIsagRetriever]:
        return ZiIsagRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"sources": example_sources(), "extractor": EMBEDDED}

    @property
    def retriever_query_example(self) -> str:
        return DEMO_QUERY


@pytest.fixture(scope="module")
def retriever() -> ZiIsagRetriever:
    return ZiIsagRetriever(sources=example_sources(), extractor=EMBEDDED, k=None)


def test_documents_carry_provenance_and_token_accounting(retriever: ZiIsagRetriever) -> None:
    docs = retriever.invoke(DEMO_QUERY)
    assert docs
    result = retriever.pipeline.run(DEMO_QUERY, example_sources())
    assert [d.page_content for d in docs] == [p.text for p in result.passages]
    for doc in docs:
        meta = doc.metadata
        assert set(meta) >= {"source", "title", "tags", "start", "end", "tokens", "failed_windows", "dropped_tags", "warnings"}
        assert (meta["failed_windows"], meta["dropped_tags"], meta["warnings"]) == (0, 0, [])
        assert meta["source"] in example_sources()
        assert meta["tags"] and all(isinstance(t, int) for t in meta["tags"])
        assert meta["end"] - meta["start"] >= len(doc.page_content.strip())
        assert set(meta["tokens"]) == {"content", "prompt", "output", "kept"}
        assert meta["tokens"] == docs[0].metadata["tokens"]
    assert 0 < docs[0].metadata["tokens"]["kept"] < docs[0].metadata["tokens"]["content"]
    # The answer is about heat pumps: the sourdough page gives nothing.
    assert not any("sourdough" in d.metadata["source"] for d in docs)


def test_plain_text_passages_are_exact_slices(retriever: ZiIsagRetriever) -> None:
    txt = next(s for s in example_sources() if s.endswith(".txt"))
    docs = retriever.invoke("How often should a sourdough starter be fed?", sources=[txt])
    assert docs
    text = open(txt, encoding="utf-8").read()
    for doc in docs:
        assert text[doc.metadata["start"] : doc.metadata["end"]] == doc.page_content


async def test_call_time_arguments(retriever: ZiIsagRetriever) -> None:
    assert len(await retriever.ainvoke(DEMO_QUERY, k=1)) == 1
    budget = await retriever.ainvoke(DEMO_QUERY, max_tokens=40)
    assert budget and budget[0].metadata["tokens"]["kept"] <= 40
    md = next(s for s in example_sources() if s.endswith(".md"))
    assert {d.metadata["source"] for d in await retriever.ainvoke(DEMO_QUERY, sources=md)} == {md}
    with pytest.raises(InputError, match="Unknown argument"):
        await retriever.ainvoke(DEMO_QUERY, top_n=2)


def test_async_path_is_native() -> None:
    # A real coroutine over Pipeline.arun, not BaseRetriever's run_in_executor fallback.
    assert ZiIsagRetriever._aget_relevant_documents is not BaseRetriever._aget_relevant_documents


def test_one_pipeline_per_retriever_and_shared_extractor(retriever: ZiIsagRetriever) -> None:
    assert retriever.pipeline is retriever.pipeline
    reused = ZiIsagRetriever(extractor=retriever.pipeline.extractor, sources=example_sources())
    assert reused.pipeline.extractor is retriever.pipeline.extractor


def test_bm25_by_name_and_settings_fields() -> None:
    r = ZiIsagRetriever(extractor="bm25", sources=example_sources(), k=2, max_tokens=300, max_results=3)
    assert r.pipeline.settings.extractor == "bm25" and r.pipeline.settings.max_results == 3
    docs = r.invoke(DEMO_QUERY)
    assert 1 <= len(docs) <= 2


def test_secret_key_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-from-env-123")
    r = ZiIsagRetriever(extractor="bm25")
    assert r.tavily_api_key is not None and r.tavily_api_key.get_secret_value() == "tvly-from-env-123"
    r = ZiIsagRetriever(extractor="bm25", tavily_api_key="tvly-secret-456")
    for shown in (repr(r), str(r), repr(r.pipeline.settings), r.model_dump_json()):
        assert "tvly-secret-456" not in shown and "tvly-from-env-123" not in shown


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{d.metadata['source']}]\n{d.page_content}" for d in docs)


def test_in_an_lcel_chain(retriever: ZiIsagRetriever) -> None:
    prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
    seen: list[str] = []

    def capture(value: Any) -> Any:
        seen.append(value.to_string())
        return value

    llm = FakeListChatModel(responses=["Around 2 to 3 at -15 °C."])
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | prompt
        | RunnableLambda(capture)
        | llm
        | StrOutputParser()
    )
    assert chain.invoke(DEMO_QUERY) == "Around 2 to 3 at -15 °C."
    passages = retriever.invoke(DEMO_QUERY)
    assert passages[0].page_content in seen[0] and DEMO_QUERY in seen[0]


class _Errors(BaseCallbackHandler):
    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors.append(error)


class _AsyncErrors(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    async def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors.append(error)


def test_errors_fire_on_retriever_error_and_propagate(retriever: ZiIsagRetriever) -> None:
    handler = _Errors()
    with pytest.raises(InputError, match="query is empty"):
        retriever.invoke("   ", config={"callbacks": [handler]})
    assert len(handler.errors) == 1 and isinstance(handler.errors[0], InputError)


async def test_async_errors_fire_on_retriever_error_and_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    monkeypatch.delenv("ZI_ISAG_TAVILY_API_KEY", raising=False)
    searching = ZiIsagRetriever(extractor="bm25")  # no sources, no key: it would have to search
    handler = _AsyncErrors()
    with pytest.raises(MissingApiKeyError, match="TAVILY_API_KEY"):
        await searching.ainvoke(DEMO_QUERY, config={"callbacks": [handler]})
    assert len(handler.errors) == 1 and isinstance(handler.errors[0], MissingApiKeyError)


def test_searches_searxng_by_name_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    monkeypatch.delenv("ZI_ISAG_TAVILY_API_KEY", raising=False)
    with PageServer() as pages:
        stub = SearXNGStub([searxng_result(url, url.rsplit("/", 1)[-1], ["duckduckgo"], 1.0) for url in pages.urls])
        with LocalServer({"/search": stub.route}) as searxng:
            r = ZiIsagRetriever(
                extractor="bm25", search="searxng", searxng_url=searxng.url(""), max_results=2,
                settings=Settings(allow_private_networks=True), k=None,
            )
            assert (r.pipeline.settings.search, r.pipeline.settings.searxng_url) == ("searxng", searxng.url(""))
            docs = r.invoke(DEMO_QUERY)
    assert docs and {d.metadata["source"] for d in docs} <= set(pages.urls[:2])
    both = ZiIsagRetriever(extractor="bm25", search="tavily,searxng", searxng_url="http://127.0.0.1:9")
    assert both.pipeline.settings.search_names == ["tavily", "searxng"]


def _answers(handler: Any) -> None:
    """Tag 1 of the heat-pump pages, "" (a failed window) for the sourdough page."""
    body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0)).decode().lower()
    answer = "" if "sourdough" in body else "#Extracted Information Tag#: [[<T-1>]]"
    send(handler, 200, json.dumps({"choices": [{"message": {"content": answer}}]}).encode(), "application/json")


async def test_extraction_failures_are_in_metadata_and_a_total_failure_raises() -> None:
    txt = next(s for s in example_sources() if s.endswith(".txt"))
    with LocalServer({"/v1/chat/completions": _answers}) as endpoint:
        extractor = OpenAIExtractor(endpoint.url("/v1"), "m", max_retries=0)
        docs = await ZiIsagRetriever(sources=example_sources(), extractor=extractor, k=None).ainvoke(DEMO_QUERY)
        assert docs
        meta = docs[0].metadata
        assert meta["failed_windows"] >= 1 and any("empty answer" in w for w in meta["warnings"])
        with pytest.raises(ExtractorError, match="Extraction failed for every window .*empty answer"):
            ZiIsagRetriever(sources=[txt], extractor=extractor).invoke("Why feed a sourdough starter?")
