"""The ``openai`` backend's windows in flight, through the pipeline, against a real local
OpenAI-compatible server that answers every request after a fixed latency.

A call's windows go out together up to ``openai_concurrency`` (not a chunk of ``extract_chunk``
windows at a time), concurrent calls share that limit, results keep their order, and no window waits
for a slot past the call's extraction budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from evals.bench_replicas import LatencyChatServer, distinct_documents
from zi_isag_tool.extractors.openai_compat import OpenAIExtractor
from zi_isag_tool.pipeline import Pipeline
from zi_isag_tool.settings import Settings

LATENCY = 0.25


@pytest.fixture(scope="module")
def chat() -> Iterator[LatencyChatServer]:
    with LatencyChatServer(LATENCY) as server:
        yield server


def _pipeline(chat: LatencyChatServer, *, concurrency: int, **settings: object) -> Pipeline:
    values: dict[str, object] = {"extract_chunk": 1, **settings}
    extractor = OpenAIExtractor(
        chat.base_url, "served", concurrency=concurrency, max_retries=0, call_budget=None
    )
    return Pipeline(Settings(_env_file=None, **values), extractor=extractor)  # type: ignore[arg-type, call-arg]


async def test_windows_of_every_chunk_are_in_flight_together(chat: LatencyChatServer) -> None:
    chat.reset()
    steps: list[int] = []

    async def progress(stage: str, done: int, total: int) -> None:
        if stage == "extract":
            steps.append(done)

    documents = distinct_documents(12)  # one window each; extract_chunk=1: twelve chunks
    result = await _pipeline(chat, concurrency=6).aextract_documents("tides?", documents, progress=progress)
    assert result.windows == 12 and not result.failed_windows
    assert [p.source for p in result.passages] == [d.source for d in documents]  # order kept
    assert chat.requests == 12 and chat.max_in_flight == 6  # not 1 (one chunk after another)
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 12


async def test_concurrent_calls_share_the_limit(chat: LatencyChatServer) -> None:
    chat.reset()
    pipeline = _pipeline(chat, concurrency=4)
    results = await asyncio.gather(
        *(pipeline.aextract_documents(f"question {i}", distinct_documents(6)) for i in range(3))
    )
    assert [r.failed_windows for r in results] == [0, 0, 0]
    assert chat.requests == 18 and chat.max_in_flight == 4


async def test_no_window_waits_for_a_slot_past_the_budget(chat: LatencyChatServer) -> None:
    """Two slots, 0.6 s of budget, 0.25 s per answer, ten windows (1.25 s of work): some windows are
    answered, at most two more were waiting for their answer when the budget ran out, and the rest
    were never sent."""
    chat.reset()
    result = await _pipeline(chat, concurrency=2, extract_budget=0.6).aextract_documents(
        "q", distinct_documents(10)
    )
    answered = result.windows - result.failed_windows
    assert result.windows == 10 and answered <= 4  # two rounds fit in the budget, at most
    assert answered <= chat.requests <= answered + 2 < 10
    assert any("extraction budget (0.6 s) was spent" in w for w in result.warnings)
    assert all("extraction budget" in w for w in result.warnings)
