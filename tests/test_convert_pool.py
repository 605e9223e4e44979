"""Conversion isolated in worker processes: a crash, an overrun or a memory hog costs one page, the
deadline stops the CPU work, many large pages convert at once without a crash, and the pool serves
the next call.

Set ``ZI_ISAG_ARTICLE_PAGES`` to a folder in the article-extraction-benchmark layout
(``html/*.html.gz``) to add its real pages to the stress test; without it that part is skipped.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.web.converters import ABORT, HOG, SPIN, abort_now, misbehaving, sleep_for, worker_pid
from fixtures.web.web_servers import LocalServer, html_page, static

from evals.bench_convert import large_page
from zi_isag_tool.pipeline import Pipeline
from zi_isag_tool.settings import Settings
from zi_isag_tool.web.convert_pool import ConversionFailed, ConversionPool
from zi_isag_tool.web.fetch import Fetcher

QUERY = "How do heat pumps work at minus fifteen degrees?"
LARGE = 5
LARGE_BYTES = 400_000
ROUNDS = 3


# Different texts: pages with (nearly) the same text would be extracted once (zi_isag_tool.duplicates).
_CLAIMS = (
    "keeps a coefficient of performance above two at minus fifteen degrees",
    "still heats a well insulated house at minus fifteen degrees without its backup coil",
    "loses about a third of its capacity between plus five and minus fifteen degrees",
    "needs defrost cycles more often at minus fifteen degrees when the air is humid",
)


def _good(i: int) -> bytes:
    return html_page(
        f"Heat pumps {i}",
        f"Page {i}: a cold-climate heat pump {_CLAIMS[i]}. Heat pumps move heat instead of making it.",
    ).encode()


def _marked(marker: bytes, extra: str = "") -> bytes:
    return html_page("Marked", f"{marker.decode()} {extra} heat pumps at minus fifteen degrees.").encode()


@pytest.fixture(scope="module")
def pid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pids") / "spin.pid"


@pytest.fixture(scope="module")
def server(pid_file: Path) -> Iterator[LocalServer]:
    routes = {f"/good/{i}": static(_good(i), "text/html; charset=utf-8") for i in range(4)}
    routes["/abort"] = static(_marked(ABORT), "text/html; charset=utf-8")
    routes["/spin"] = static(_marked(SPIN, f"pidfile={pid_file};"), "text/html; charset=utf-8")
    routes["/hog"] = static(_marked(HOG), "text/html; charset=utf-8")
    for i in range(LARGE):
        routes[f"/large/{i}"] = static(large_page(i, LARGE_BYTES).encode(), "text/html; charset=utf-8")
    with LocalServer(routes) as srv:  # type: ignore[arg-type]
        yield srv


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "allow_private_networks": True,
        "fetch_timeout": 4.0,
        "max_page_bytes": 3_000_000,
        "per_host_concurrency": 16,
        "convert_workers": 2,
        "extractor": "full",  # every page that converts gives passages, whatever the selection rule
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_pool_runs_in_other_processes_and_survives_crash_overrun_and_memory_hog() -> None:
    pool = ConversionPool(2, memory_mb=512)
    try:
        pids = set(await asyncio.gather(*(pool.run(worker_pid) for _ in range(4))))
        assert os.getpid() not in pids
        with pytest.raises(ConversionFailed) as crash:
            await pool.run(abort_now)
        assert (crash.value.status, crash.value.message) == ("error", "conversion crashed (worker killed by SIGABRT)")
        with pytest.raises(ConversionFailed) as slow:
            await pool.run(sleep_for, 60, timeout=0.5)
        assert (slow.value.status, slow.value.message) == ("timeout", "conversion did not finish within 0.5 s; stopped")
        with pytest.raises(ConversionFailed) as hog:
            await pool.run(misbehaving, _hog_job())
        assert (hog.value.status, hog.value.message) == ("error", "conversion ran out of memory (limit 512 MB)")
        # The pool replaced what it lost and still converts, several at once.
        assert await asyncio.gather(*(pool.run(sleep_for, 0) for _ in range(4))) == ["slept"] * 4
    finally:
        await pool.aclose()


def _hog_job() -> object:
    from zi_isag_tool.web.convert_pool import PageJob

    return PageJob("html", _marked(HOG), "text/html", "http://hog.test/")


async def test_dead_and_overrunning_pages_cost_only_themselves(server: LocalServer, pid_file: Path) -> None:
    settings = _settings()
    good = [server.url(f"/good/{i}") for i in range(3)]
    urls = [good[0], server.url("/abort"), good[1], server.url("/spin"), good[2]]
    async with Fetcher(settings, converter=misbehaving) as fetcher:
        pipeline = Pipeline(settings, fetcher=fetcher)
        # Workers up first, so a slow start on a loaded machine is not counted in the pages' deadline.
        assert (await pipeline.arun(QUERY, [server.url("/good/3")])).passages
        result = await pipeline.arun(QUERY, urls)
        by_source = {s.source: s for s in result.sources}
        assert (by_source[server.url("/abort")].status, by_source[server.url("/abort")].error) == (
            "error",
            "conversion crashed (worker killed by SIGABRT)",
        )
        assert (by_source[server.url("/spin")].status, by_source[server.url("/spin")].error) == (
            "timeout",
            "conversion did not finish within the 4 s page deadline; stopped",
        )
        assert [by_source[u].status for u in good] == ["ok"] * 3
        assert {p.source for p in result.passages} == set(good)  # every other page gave its passages
        # The deadline stopped the CPU work: the spinning worker is gone, not left burning a core.
        spinning = int(pid_file.read_text())
        for _ in range(100):
            if _gone(spinning):
                break
            await asyncio.sleep(0.1)
        assert _gone(spinning)
        # The same fetcher's pool serves the next call.
        again = await pipeline.arun(QUERY, [server.url("/good/3")])
        assert [s.status for s in again.sources] == ["ok"] and again.passages


async def test_memory_hog_page_is_an_error_not_an_oom(server: LocalServer) -> None:
    async with Fetcher(_settings(convert_memory_mb=512), converter=misbehaving) as fetcher:
        hog, good = await fetcher.fetch_many([server.url("/hog"), server.url("/good/0")])
    assert (hog.status, hog.error) == ("error", "conversion ran out of memory (limit 512 MB)")
    assert good.status == "ok"


async def test_large_markup_heavy_pages_convert_concurrently_without_a_crash(server: LocalServer) -> None:
    urls = [server.url(f"/large/{i}") for i in range(LARGE)] + [server.url("/good/0")]
    async with Fetcher(_settings(fetch_timeout=300.0)) as fetcher:
        for _ in range(ROUNDS):
            pages = await fetcher.fetch_many(urls)
            assert [(p.status, p.error) for p in pages] == [("ok", None)] * len(urls)
            for i, page in enumerate(pages[:LARGE]):
                assert page.title == f"Large page {i}"
                assert "## Section 1" in (page.text or "") and "|" in (page.text or "")  # headings, tables


async def test_real_article_pages_convert_concurrently_without_a_crash() -> None:
    folder = os.environ.get("ZI_ISAG_ARTICLE_PAGES")
    if not folder:
        pytest.skip("set ZI_ISAG_ARTICLE_PAGES to an article-extraction-benchmark folder to run this")
    files = sorted((Path(folder) / "html").glob("*.html.gz"))
    assert files, f"no html/*.html.gz under {folder}"
    routes = {f"/a/{f.name}": static(gzip.decompress(f.read_bytes()), "text/html") for f in files}
    with LocalServer(routes) as pages:  # type: ignore[arg-type]
        urls = [pages.url(path) for path in routes]
        async with Fetcher(_settings(fetch_timeout=300.0, max_concurrency=256)) as fetcher:
            for _ in range(2):
                results = await fetcher.fetch_many(urls)
                failed = [(p.url, p.status, p.error) for p in results if p.status != "ok"]
                # A page may hold no readable text; none may crash or time out.
                assert all(e == "no readable text on the page" for _, _, e in failed), failed


def test_a_script_without_a_main_guard_is_not_rerun_by_the_workers(tmp_path: Path) -> None:
    """Workers never re-run the caller's main script: its side effects happen once, and it works."""
    page = tmp_path / "page.html"
    page.write_bytes(_good(0))
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from zi_isag_tool import Pipeline\n"
        "print('side effect', flush=True)\n"
        f"result = Pipeline(extractor='bm25').run('heat pumps at minus fifteen', [{str(page)!r}])\n"
        "print('sources', [s.status for s in result.sources], bool(result.passages), flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["side effect", "sources ['ok'] True"]


def test_a_pipeline_keeps_its_workers_across_calls_until_closed(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_bytes(_good(1))
    with Pipeline(_settings()) as pipeline:
        first = pipeline.run(QUERY, [str(page)])
        pool = pipeline._pool
        second = pipeline.run(QUERY, [str(page)])  # a new event loop, the same workers
        assert first.passages and second.passages and pipeline._pool is pool
        assert pool is not None and not pool.closed
    assert pool.closed and pipeline._pool is None
