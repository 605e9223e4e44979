"""The Pipeline end to end on local sources: exact passages, statuses, tokens, bad input."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from zi_isag_tool import InputError, Pipeline
from zi_isag_tool.cli import DEMO_QUERY, example_sources
from zi_isag_tool.extractors.base import SyncExtractor
from zi_isag_tool.types import Document, TaggedWindow, WindowSelection

RESULT_KEYS = {"query", "passages", "sources", "tokens", "passages_left_out", "windows", "failed_windows", "dropped_tags", "warnings"}



def _check_exact(result) -> None:
    docs = {d.source: d for d in result.documents}
    for p in result.passages:
        assert docs[p.source].text[p.start : p.end] == p.text
        assert p.text.strip()


@pytest.fixture(scope="module")
def embedding_pipeline() -> Pipeline:
    return Pipeline(extractor="embedding")


@pytest.fixture(scope="module")
def bm25() -> Pipeline:
    return Pipeline(extractor="bm25")


def test_bm25_on_bundled_examples(bm25: Pipeline) -> None:
    result = bm25.run(DEMO_QUERY, example_sources())
    assert [s.status for s in result.sources] == ["ok"] * 3
    assert result.passages
    _check_exact(result)
    t = result.tokens
    assert 0 < t.kept < t.content and t.prompt > t.content and t.output > 0
    assert result.tokenizer == "o200k_base"
    shape = result.to_dict()
    assert set(shape) == RESULT_KEYS
    assert set(shape["passages"][0]) == {"source", "title", "tags", "start", "end", "text"}


def test_embedding_default_finds_the_answer_and_skips_the_unrelated_page(embedding_pipeline: Pipeline) -> None:
    result = embedding_pipeline.run(DEMO_QUERY, example_sources())
    _check_exact(result)
    assert result.passages and all("heat-pump" in p.source for p in result.passages)
    assert any("cold" in p.text for p in result.passages)
    assert result.tokens.kept < result.tokens.content / 2


def test_token_budget_and_max_passages(bm25: Pipeline) -> None:
    result = bm25.run(DEMO_QUERY, example_sources(), max_tokens=60, max_passages=2)
    assert result.tokens.kept <= 60 and len(result.passages) <= 2
    _check_exact(result)


def test_partial_failure_keeps_the_good_sources(tmp_path: Path, bm25: Pipeline) -> None:
    good = []
    for i in range(6):
        f = tmp_path / f"page{i}.md"
        f.write_text(f"# Page {i}\n\nHeat pumps reach a COP of {i + 2} in mild weather.\n", encoding="utf-8")
        good.append(str(f))
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    bad = [str(tmp_path / "missing.md"), str(tmp_path / "image.png"), "ftp://example.org/x.txt", "gopher://x/"]
    sources = good[:3] + bad[:2] + good[3:] + bad[2:]
    result = bm25.run("What COP do heat pumps reach?", sources)
    statuses = {s.source: s.status for s in result.sources}
    assert [statuses[g] for g in good] == ["ok"] * 6
    assert statuses[bad[0]] == "error" and statuses[bad[1]] == "unsupported"
    assert statuses[bad[2]] == statuses[bad[3]] == "unsupported"
    assert all(s.error for s in result.sources if s.status != "ok")
    assert {p.source for p in result.passages} <= set(good) and result.passages


def test_bad_documents_get_clear_results(tmp_path: Path, bm25: Pipeline) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t\n   \n")
    huge = tmp_path / "huge.txt"
    huge.write_text("heat pump efficiency " * 250_000)  # ~5 MB on a single line
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(os.urandom(200_000))
    pipeline = Pipeline(extractor="bm25", max_page_bytes=6_000_000)
    result = pipeline.run("heat pump efficiency", [str(empty), str(blank), str(huge), str(garbage)])
    by_source = {s.source: s for s in result.sources}
    assert by_source[str(empty)].status == "ok" and "empty" in (by_source[str(empty)].error or "")
    assert by_source[str(blank)].status == "ok" and "empty" in (by_source[str(blank)].error or "")
    assert by_source[str(huge)].status == "ok"
    assert by_source[str(garbage)].status in {"ok", "unsupported"}
    assert result.windows > 1
    _check_exact(result)


def test_query_validation(bm25: Pipeline) -> None:
    with pytest.raises(InputError, match="empty"):
        bm25.run("   ", example_sources())
    with pytest.raises(InputError, match="10000 characters"):
        bm25.run("x" * 10_000, example_sources())


class _Garbled(SyncExtractor):
    """Answers like a broken model: the pipeline must record the failure, not crash."""

    name = "garbled"

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        return [WindowSelection(tags=[], raw_output="I think maybe", failed=True, error="no tag list") for _ in windows]


def test_malformed_extractor_answers_are_recorded_not_raised() -> None:
    result = Pipeline(extractor=_Garbled()).extract_documents(
        "q", [Document("raw:1", "Some text. More text."), Document("raw:2", "")]
    )
    assert result.passages == [] and result.failed_windows == result.windows == 1


async def test_sync_run_works_inside_a_running_loop(bm25: Pipeline) -> None:
    result = bm25.run(DEMO_QUERY, example_sources()[:1])
    async_result = await bm25.arun(DEMO_QUERY, example_sources()[:1])
    assert result.to_dict() == async_result.to_dict()
    await asyncio.sleep(0)


def test_progress_reports_extract_stage(bm25: Pipeline) -> None:
    seen: list[tuple[str, int, int]] = []
    bm25.run(DEMO_QUERY, example_sources(), progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert seen[0] == ("extract", 0, seen[0][2]) and seen[-1][1] == seen[-1][2]


def test_local_files_can_be_refused(tmp_path: Path) -> None:
    result = Pipeline(extractor="bm25", allow_local_files=False).run("q", example_sources()[:1])
    assert result.sources[0].status == "blocked"
    result = Pipeline(extractor="bm25", local_roots=[tmp_path]).run("q", example_sources()[:1])
    assert result.sources[0].status == "blocked"
