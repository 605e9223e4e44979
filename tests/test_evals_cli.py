"""``python -m evals``: suites end to end (subprocess, the embedded extractor) and in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from evals.cli import build_parser, config_from_args, run_evals
from evals.extractors import ExtractorPool, split_specs
from evals.loaders import EvalItem
from evals.suites import Context, EvalConfig, run_item
from evals.suites.savings import info_tag_answer, verbatim_answer, window_savings
from zi_isag_tool.tokens import default_counter

FIXTURES = Path(__file__).parent / "fixtures" / "evals"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
METRIC_KEYS = {"tag_recall", "tag_precision", "tag_f1", "negative_em", "context_token_ratio", "output_tokens"}


def _evals(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "evals", *args, "--no-progress"],
        capture_output=True, text=True, env=ENV, timeout=600, cwd=Path(__file__).parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(args[args.index("--out") + 1])
    results = json.loads((out / "results.json").read_text())
    report = (out / "report.md").read_text()
    assert results["command"].startswith("python -m evals " + args[0])
    assert results["command"] in report.split("\n", 6)[3]  # the exact command line at the top
    return results


def _unit(value: Any) -> bool:
    return value is None or 0.0 <= value <= 1.0


def _check_quality(metrics: dict[str, Any]) -> None:
    assert METRIC_KEYS <= set(metrics), metrics
    for key in ("tag_recall", "tag_precision", "tag_f1", "negative_em", "negative_lenient", "context_token_ratio"):
        assert _unit(metrics[key]), (key, metrics[key])
    assert metrics["errors"] == 0 and metrics["n_items"] > 0
    assert metrics["output_tokens"] > 0


@pytest.mark.slow
def test_query_hotpotqa_with_embedding(tmp_path: Path) -> None:
    out = tmp_path / "query"
    results = _evals(
        "query", "--format", "hotpotqa", "--data", str(FIXTURES / "hotpotqa_mini.json"),
        "--extractor", "full", "embedding", "--negatives", "0.4", "--out", str(out),
    )
    suite = results["suites"]["query"]
    assert set(suite) == {"full", "embedding"}
    for metrics in suite.values():
        _check_quality(metrics)
        assert (metrics["n_positive"], metrics["n_negative"]) == (3, 2)
    full = suite["full"]
    assert full["tag_recall"] == 1.0 and full["negative_em"] == 0.0 and full["context_token_ratio"] == 1.0
    assert suite["embedding"]["context_token_ratio"] < 1.0


@pytest.mark.slow
def test_needle_with_embedding_writes_heatmap(tmp_path: Path) -> None:
    out = tmp_path / "needle"
    results = _evals(
        "needle", "--extractor", "embedding", "--lengths", "1000", "--depths", "0,50", "--hop-items", "1",
        "--limit", "4", "--seed", "3", "--out", str(out),
    )
    metrics = results["suites"]["needle"]["embedding"]
    _check_quality(metrics)
    assert metrics["n_items"] == 4 and metrics["negative_em"] is None
    assert metrics["selected_tags_mean"] > 0 and metrics["context_token_ratio"] < 0.5
    assert metrics["heatmap"]["lengths"] == [1000] and metrics["heatmap"]["depths"] == [0.0, 50.0]
    assert (out / "needle_heatmap.png").stat().st_size > 1000
    assert "needle_heatmap.png" in (out / "report.md").read_text()


@pytest.mark.slow
def test_savings_zi_isag_with_embedding(tmp_path: Path) -> None:
    out = tmp_path / "savings"
    results = _evals(
        "savings", "--format", "zi-isag", "--data", str(FIXTURES / "zi_isag_mini.jsonl"),
        "--extractor", "full", "--extractor", "embedding", "--out", str(out),
    )
    suite = results["suites"]["savings"]
    for metrics in suite.values():
        _check_quality(metrics)
        assert metrics["tag_markup_overhead"] > 0 and metrics["prompt_content_ratio"] > 1
        assert metrics["output_tokens_tag_only"] > 0
    full = suite["full"]
    # writing the whole text out costs more than naming its tags
    assert full["verbatim_vs_tag_only"] > 1 and full["info_tag_vs_tag_only"] > 1
    assert full["context_token_ratio"] == 1.0


# --- in process, no model -----------------------------------------------------------------------


def test_parser_and_config() -> None:
    args = build_parser().parse_args(
        ["query", "-e", "bm25,lead", "-e", "full", "--lengths", "1000,2000", "--depths", "0,100", "--limit", "5"]
    )
    cfg = config_from_args(args)
    assert cfg.extractors == ["bm25", "lead", "full"]
    assert cfg.lengths == [1000, 2000] and cfg.depths == [0.0, 100.0] and cfg.limit == 5
    assert split_specs(["a, b", "a", ""]) == ["a", "b"]
    # Space-separated (as argparse users type it), comma-separated, repeated, mixed: all the same list.
    for argv in (
        ["query", "--extractor", "bm25", "lead", "full"],
        ["query", "--extractor", "bm25,lead,full"],
        ["query", "-e", "bm25", "-e", "lead,full", "--limit", "2"],
        ["--extractor", "bm25", "lead", "--extractor", "full", "--", "query"],
        ["query", "--extractor", "bm25", "lead,full", "--out", "runs/x"],
    ):
        assert config_from_args(build_parser().parse_args(argv)).extractors == ["bm25", "lead", "full"], argv
    with pytest.raises(SystemExit):
        build_parser().parse_args(["query", "--extractor"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["query", "--depths", "120"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["nope"])


def test_query_and_savings_in_process(tmp_path: Path) -> None:
    cfg = EvalConfig(
        suite="savings", extractors=["full", "lead", "no-such-backend"], format="hotpotqa",
        data=str(FIXTURES / "hotpotqa_mini.json"), negatives_share=0.0, out=str(tmp_path), progress=False,
    )
    results = run_evals(cfg, "python -m evals savings ...")
    suite = results["suites"]["savings"]
    assert "error" in suite["no-such-backend"]  # a bad spec is reported, the others still run
    lead = suite["lead"]
    # lead keeps the first 5 segments of each item: mini-1 hits tag 2 of {2, 6}; mini-2 hits 3 and 5 of
    # {3, 5, 7}; mini-3 hits 2 and 5 of {2, 5}
    assert lead["tag_recall"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert lead["tag_precision"] == pytest.approx((1 / 5 + 2 / 5 + 2 / 5) / 3)
    assert lead["output_tokens_verbatim"] > lead["output_tokens_tag_only"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["suites"]["savings"]["lead"]["tag_recall"] == pytest.approx(lead["tag_recall"])
    assert "| lead |" in (tmp_path / "report.md").read_text()


def test_output_modes_by_hand(tmp_path: Path) -> None:
    ctx = Context(config=EvalConfig(progress=False), pool=ExtractorPool(), out_dir=tmp_path)
    item = EvalItem(
        id="x", query="When does the market open?", kind="t",
        texts=("Market guide\n", "The market is on Thursdays.", " Stalls open at seven.", " Parking is free."),
        gold_tags=frozenset({2, 3}),
    )
    run = run_item(ctx, ctx.pool.get("full"), item)
    assert run.selected == frozenset({1, 2, 3, 4}) and run.gold == frozenset({2, 3})
    assert info_tag_answer(run, 0, [2, 3]) == (
        "#Extracted Information#:\n1. The market is on Thursdays. Stalls open at seven.[<T-2>~<T-3>]"
    )
    assert info_tag_answer(run, 0, [1, 4]) == (
        "#Extracted Information#:\n1. Market guide[<T-1>]\n2. Parking is free.[<T-4>]"
    )
    assert info_tag_answer(run, 0, []) == "#Extracted Information#: None"
    assert verbatim_answer(run, 0, [2, 3]) == "The market is on Thursdays. Stalls open at seven."
    totals = window_savings(run, default_counter())
    assert totals["windows"] == 1 and totals["tagged"] > totals["plain"] > 0
    counter = default_counter()
    assert totals["tag_only"] == counter.count("#Extracted Information Tag#: [[<T-1>~<T-4>]]")
    assert totals["verbatim"] == counter.count(verbatim_answer(run, 0, [1, 2, 3, 4]))


# --- openai:MODEL through --base-url, against a real local server ---------------------------------


class _FixedAnswer(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that always answers tags 2 to 3."""

    answer = "#Extracted Information Tag#: [[<T-2>~<T-3>]]"
    models: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        type(self).models.append(body.get("model", ""))
        payload = json.dumps(
            {
                "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": self.answer}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 13, "total_tokens": 113},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_openai_extractor_via_base_url(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FixedAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = EvalConfig(
            suite="query", extractors=["openai:fixed-model"], format="zi-isag",
            data=str(FIXTURES / "zi_isag_mini.jsonl"), out=str(tmp_path), progress=False,
            base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
        )
        results = run_evals(cfg, "python -m evals query ...")
    finally:
        server.shutdown()
        server.server_close()
    metrics = results["suites"]["query"]["openai:fixed-model"]
    assert set(_FixedAnswer.models) == {"fixed-model"}
    # market item: gold {2, 3} -> exact; Copper Hollow: gold {1, 2} -> P 1/2, R 1/2; mural: negative, selected
    assert metrics["tag_recall"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["tag_precision"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["negative_em"] == 0.0 and metrics["errors"] == 0
    assert metrics["output_tokens"] > 0
