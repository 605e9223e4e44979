"""The `zi-isag` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fixtures.web.web_servers import LocalServer, send

from zi_isag_tool.cli import example_sources

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
ENV.pop("TAVILY_API_KEY", None)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zi_isag_tool.cli", *args], capture_output=True, text=True, env=ENV, timeout=600
    )


def test_extract_json_shape_and_exact_offsets() -> None:
    md = next(s for s in example_sources() if s.endswith(".md"))
    proc = _cli("extract", "How do I size a heat pump for a cold house?", "--source", md, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"query", "passages", "sources", "tokens", "windows", "failed_windows", "dropped_tags", "warnings"}
    assert out["windows"] >= 1 and (out["failed_windows"], out["dropped_tags"], out["warnings"]) == (0, 0, [])
    assert set(out["tokens"]) == {"content", "prompt", "output", "kept"}
    assert out["sources"] == [{"source": md, "status": "ok", "error": None}]
    assert out["passages"]
    source_text = Path(md).read_text(encoding="utf-8")
    for p in out["passages"]:
        assert set(p) == {"source", "title", "tags", "start", "end", "text"}
        assert source_text[p["start"] : p["end"]] == p["text"]


def test_text_output_and_demo_with_bm25() -> None:
    proc = _cli("demo", "--extractor", "bm25")
    assert proc.returncode == 0, proc.stderr
    assert "tags" in proc.stdout and proc.stdout.rstrip().splitlines()[-1].startswith("tokens (o200k_base)")


def test_errors_are_one_clear_line() -> None:
    proc = _cli("extract", "a question")  # no sources and no key
    assert proc.returncode == 2
    assert "TAVILY_API_KEY" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("extract", "q", "--source", example_sources()[0], "--extractor", "nonsense")
    assert proc.returncode == 2 and "Unknown extractor" in proc.stderr


def _empty_answers(handler: Any) -> None:
    handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    send(handler, 200, json.dumps({"choices": [{"message": {"content": ""}}]}).encode(), "application/json")


def test_every_window_failing_shows_in_json_and_exit_code() -> None:
    md = next(s for s in example_sources() if s.endswith(".md"))
    with LocalServer({"/v1/chat/completions": _empty_answers}) as endpoint:
        env = {**ENV, "ZI_ISAG_OPENAI_BASE_URL": endpoint.url("/v1"), "ZI_ISAG_OPENAI_MAX_RETRIES": "0"}
        proc = subprocess.run(
            [sys.executable, "-m", "zi_isag_tool.cli", "extract", "q", "--source", md, "--extractor", "openai:m", "--json"],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["windows"] >= 1 and out["failed_windows"] == out["windows"] and out["passages"] == []
    assert out["warnings"] == [f"{out['windows']} of {out['windows']} windows failed: empty answer"]
