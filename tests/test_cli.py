"""The `zi-isag` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fixtures.web.web_servers import LocalServer, SearXNGStub, searxng_result, send

from evals.bench_adapters import PageServer
from zi_isag_tool.cli import example_sources

ENV = {k: v for k, v in os.environ.items() if not k.startswith("ZI_ISAG_") and k != "TAVILY_API_KEY"}
ENV.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zi_isag_tool.cli", *args],
        capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=600,
    )


def test_extract_json_shape_and_exact_offsets() -> None:
    md = next(s for s in example_sources() if s.endswith(".md"))
    proc = _cli("extract", "How do I size a heat pump for a cold house?", "--source", md, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {
        "query", "passages", "sources", "tokens", "passages_left_out", "windows", "failed_windows", "dropped_tags",
        "warnings",
    }
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
    proc = _cli("extract", "a question")  # no sources, no key, no SearXNG instance
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for way in ("TAVILY_API_KEY", "--tavily-api-key", "ZI_ISAG_SEARXNG_URL", "--searxng-url", "--source"):
        assert way in proc.stderr, way
    proc = _cli("extract", "a question", "--search", "searxng")
    assert proc.returncode == 2 and "No SearXNG instance URL" in proc.stderr and "TAVILY_API_KEY" in proc.stderr
    proc = _cli("extract", "q", "--source", example_sources()[0], "--extractor", "nonsense")
    assert proc.returncode == 2 and "Unknown extractor" in proc.stderr


def test_extract_searches_a_searxng_instance_without_a_key() -> None:
    with PageServer() as pages:
        stub = SearXNGStub([searxng_result(url, url.rsplit("/", 1)[-1], ["duckduckgo"], 1.0) for url in pages.urls])
        with LocalServer({"/search": stub.route}) as searxng:
            proc = _cli(
                "extract", "How do I size a heat pump for a cold house?", "--search", "searxng",
                "--searxng-url", searxng.url(""), "--max-results", "2", "--extractor", "bm25", "--json",
                env={"ZI_ISAG_ALLOW_PRIVATE_NETWORKS": "true"},  # the pages are served on 127.0.0.1
            )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [s["source"] for s in out["sources"]] == pages.urls[:2] and out["passages"]
    assert stub.params[-1]["q"] == "How do I size a heat pump for a cold house?"


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
