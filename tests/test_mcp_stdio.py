"""``python -m mcp_server`` as a subprocess over stdio, through the SDK's stdio client.

The stdio client starts the server with a minimal environment: the ``ZI_ISAG_*`` settings are passed
explicitly, as an MCP client config would list them. stdout must carry protocol messages only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from evals.bench_adapters import REPO_ROOT, PageServer, server_env
from zi_isag_tool.cli import DEMO_QUERY

pytestmark = pytest.mark.slow

# bm25 keeps the subprocess light; the embedded model is exercised in-process (test_mcp_memory.py).
SERVER_ENV = {
    "ZI_ISAG_EXTRACTOR": "bm25",
    "ZI_ISAG_ALLOW_PRIVATE_NETWORKS": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONPATH": str(REPO_ROOT),
}


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


async def test_stdio_client_lists_and_calls_the_tool(pages: PageServer, tmp_path) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "--log-level", "DEBUG"], env=SERVER_ENV, cwd=REPO_ROOT
    )
    with open(tmp_path / "stderr.log", "w", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool("web_extract", {"query": DEMO_QUERY, "urls": pages.urls})
    assert [t.name for t in tools] == ["web_extract"] and tools[0].output_schema is not None
    assert not result.is_error
    data = result.structured_content
    assert data["query"] == DEMO_QUERY and data["passages"]
    assert [s["status"] for s in data["sources"]] == ["ok"] * 3
    # Logs went to stderr (DEBUG level: plenty of them), not into the protocol stream.
    assert "zi-isag MCP server ready" in (tmp_path / "stderr.log").read_text(encoding="utf-8")


def test_stdout_carries_only_protocol_messages(pages: PageServer, tmp_path) -> None:
    """Raw JSON-RPC over the pipes: every stdout line parses as a protocol message."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "web_extract", "arguments": {"query": DEMO_QUERY, "urls": pages.urls}},
        },
    ]
    with open(tmp_path / "stderr.log", "w", encoding="utf-8") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mcp_server", "--log-level", "DEBUG"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            text=True,
            cwd=REPO_ROOT,
            env=server_env({"ZI_ISAG_EXTRACTOR": "bm25"}),
        )
        watchdog = threading.Timer(120, proc.kill)  # never hang the suite on a stuck server
        watchdog.start()
        replies = []
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
            proc.stdin.flush()
            while not any(r.get("id") == 2 for r in replies):
                line = proc.stdout.readline()
                assert line, "the server closed stdout before answering"
                replies.append(json.loads(line))  # anything but a JSON-RPC message fails here
        finally:
            watchdog.cancel()
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    assert all(r.get("jsonrpc") == "2.0" for r in replies)
    call = next(r for r in replies if r.get("id") == 2)
    assert call["result"]["structuredContent"]["passages"]
    assert "DEBUG" in (tmp_path / "stderr.log").read_text(encoding="utf-8")
