"""What reaches stderr: third-party page errors and progress bars stay out unless asked for.

A broken page makes trafilatura log ERROR lines ("empty HTML tree") that conversion already handles
(plain-text fallback); loading the embedding model draws a "Loading weights" bar. Neither may show
on a non-interactive stderr without ``-v``, nor in the MCP server's stdio mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from evals.bench_adapters import REPO_ROOT, PageServer, server_env
from zi_isag_tool.cli import DEMO_QUERY, example_sources

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
ENV.pop("TAVILY_API_KEY", None)
NOISE = ("trafilatura", "empty HTML tree", "Document is empty", "Loading weights", "%|")


@pytest.fixture
def broken_page(tmp_path: Path) -> Path:
    page = tmp_path / "broken.html"
    page.write_text("<<<<>>>>", encoding="utf-8")
    return page


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zi_isag_tool.cli", *args], capture_output=True, text=True, env=ENV, timeout=600
    )


@pytest.mark.slow
def test_cli_stderr_is_empty_without_verbose(broken_page: Path) -> None:
    md = next(s for s in example_sources() if s.endswith(".md"))
    # The default extractor loads the embedding model (the source of the "Loading weights" bar).
    proc = _cli("extract", "How do I size a heat pump?", "--source", md, "--source", str(broken_page), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_cli_verbose_shows_third_party_logs(broken_page: Path) -> None:
    proc = _cli("-v", "extract", "heat pump", "--source", str(broken_page), "--extractor", "bm25", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "empty HTML tree" in proc.stderr


@pytest.mark.slow
async def test_mcp_stdio_stderr_has_no_bars_and_no_page_library_noise(broken_page: Path, tmp_path: Path) -> None:
    env = server_env({"ZI_ISAG_EXTRACTOR": "embedding"})
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server"], env=env, cwd=REPO_ROOT)
    with PageServer([*example_sources(), str(broken_page)]) as pages, open(
        tmp_path / "stderr.log", "w", encoding="utf-8"
    ) as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            result = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls})
    assert not result.is_error and result.structured_content["passages"]
    log = (tmp_path / "stderr.log").read_text(encoding="utf-8")
    assert "zi-isag MCP server ready" in log  # the server's own INFO log is there
    for noise in NOISE:
        assert noise not in log, noise
