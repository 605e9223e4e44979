"""Construction of the instruction set: example files, a local teacher server, the gold route."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from train.construct.cli import main as construct_main
from train.construct.gold import GoldConfig, build_gold
from train.construct.teacher_client import TeacherClient
from zi_isag_tool.datasets import UPSTREAM_EXAMPLES_DIR
from zi_isag_tool.datasets.needlebench import split_of
from zi_isag_tool.parser import parse_tags

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = UPSTREAM_EXAMPLES_DIR
RAW = UPSTREAM / "raw_data_example_notag.jsonl"
EXTRACTED = UPSTREAM / "extract_data_extract_info_tag.jsonl"

_SEG_RE = re.compile(r"<T-(\d+)>(.*?)</T-\1>", re.DOTALL)
_QUERY_RE = re.compile(r"#User Query#:<User Query>(.*?)</User Query>", re.DOTALL)
_REF_RE = re.compile(r"#Reference Materials#:<Reference Materials>(.*?)</Reference Materials>", re.DOTALL)


def _segments(prompt: str) -> dict[int, str]:
    ref = _REF_RE.search(prompt)
    return {int(n): text for n, text in _SEG_RE.findall(ref.group(1) if ref else prompt)}


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- a local OpenAI-compatible teacher ------------------------------------------------------------


class _Teacher:
    """Answers like a careful teacher: cites the segments that name the query's brand (or None)."""

    def __init__(self, delay: float = 0.0, fail_first: int = 0) -> None:
        self.delay = delay
        self.fail_first = fail_first
        self.requests = 0
        self.lock = threading.Lock()

    def answer(self, prompt: str) -> str:
        if "#Check#" in prompt:
            return "#Check#: Yes"
        query = _QUERY_RE.search(prompt).group(1)
        words = [w for w in re.findall(r"[A-Z][a-z]+", query) if w not in ("How", "What")]
        hits = [(n, t) for n, t in _segments(prompt).items() if any(w in t for w in words)]
        if not hits:
            return "#Extracted Information#: None"
        return "#Extracted Information#:\n" + "\n".join(
            f"{k}. {t.strip()}[<T-{n}>]" for k, (n, t) in enumerate(hits, 1)
        )


@pytest.fixture
def teacher() -> Iterator[tuple[str, _Teacher]]:
    state = _Teacher()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests += 1
                fail = state.fail_first > 0
                state.fail_first -= 1 if fail else 0
            if state.delay:
                time.sleep(state.delay)
            if self.path != "/v1/chat/completions":
                self.send_response(404)
                self.end_headers()
                return
            if fail:
                payload, code = {"error": "overloaded"}, 503
            else:
                content = state.answer(body["messages"][-1]["content"])
                payload, code = {"choices": [{"message": {"role": "assistant", "content": content}}]}, 200
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()


def _many_raw(path: Path, n: int) -> Path:
    base = _read(RAW)
    brands = ["Desmann", "Huawei", "Xiaomi", "Qin", "Kaadas", "Samsung"]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            row = dict(base[i % len(base)])
            row["request"] = f"How is the {brands[i % len(brands)]} smart door lock (variant {i})?"
            fh.write(json.dumps(row) + "\n")
    return path


# --- teacher route --------------------------------------------------------------------------------


def test_split_tags_the_example_pages(tmp_path: Path) -> None:
    out = tmp_path / "tagged.jsonl"
    assert construct_main(["split", "--in", str(RAW), "--out", str(out), "--window-tokens", "256"]) == 0
    rows = _read(out)
    raw = _read(RAW)
    assert {r["request"] for r in rows} == {r["request"] for r in raw}
    for line, page in enumerate(raw, 1):
        windows = [r for r in rows if r["line"] == line]
        assert len(windows) >= 2  # 256-token windows cut these ~450-token pages
        text = "".join("".join(_segments(w["tagged_content"]).values()) for w in windows)
        assert text == page["content"]  # lossless
        for w in windows:
            assert sorted(_segments(w["tagged_content"])) == list(range(1, w["n_tags"] + 1))


def test_build_from_the_example_teacher_output(tmp_path: Path) -> None:
    out = tmp_path / "built"
    assert construct_main(["build", "--in", str(EXTRACTED), "--out-dir", str(out), "--eval-fraction", "0",
                           "--negative-ratio", "0.5"]) == 0
    records = _read(out / "train.jsonl")
    assert {r["format"] for r in records} == {"tag_only", "info_tag"}
    desmann = [r for r in records if r["format"] == "tag_only" and r["tags"]]
    assert len(desmann) == 1 and desmann[0]["tags"] == [14, 15, 16]
    assert desmann[0]["completion"][0]["content"] == "#Extracted Information Tag#: [[<T-14>~<T-16>]]"
    huawei = [r for r in records if r["format"] == "tag_only" and not r["tags"]]
    assert huawei[0]["completion"][0]["content"] == "#Extracted Information Tag#: None"
    info = [r for r in records if r["format"] == "info_tag" and r["tags"]][0]
    assert "[<T-14>]" in info["completion"][0]["content"]


def test_teacher_route_end_to_end_with_a_local_server(tmp_path: Path, teacher: tuple[str, _Teacher]) -> None:
    url, state = teacher
    raw = _many_raw(tmp_path / "raw.jsonl", 6)
    tagged, extracted, checked = tmp_path / "tagged.jsonl", tmp_path / "extracted.jsonl", tmp_path / "checked.jsonl"
    assert construct_main(["split", "--in", str(raw), "--out", str(tagged), "--window-tokens", "2000"]) == 0
    common = ["--base-url", url, "--model", "teacher", "--concurrency", "3"]
    assert construct_main(["teacher", "--in", str(tagged), "--out", str(extracted), *common]) == 0
    assert state.requests == 6
    rows = _read(extracted)
    desmann = [r for r in rows if "Desmann" in r["request"]][0]
    assert desmann["tags"] == [14, 15, 16]
    assert desmann["extractTag"] == "#Extracted Information Tag#: [[<T-14>~<T-16>]]"
    assert construct_main(["check", "--in", str(extracted), "--out", str(checked), *common]) == 0
    assert state.requests == 12
    # The same command again is served from the cache: no new request.
    assert construct_main(["teacher", "--in", str(tagged), "--out", str(extracted), *common]) == 0
    assert state.requests == 12
    out = tmp_path / "built"
    assert construct_main(["build", "--in", str(checked), "--out-dir", str(out), "--eval-fraction", "0.3",
                           "--negative-ratio", "0.2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["positives"] == 4 and report["negatives_available"] == 2 and report["negatives_kept"] == 1
    train, evals = _read(out / "train.jsonl"), _read(out / "eval.jsonl")
    assert len(train) + len(evals) == 2 * 5 and train and evals
    assert not {r["meta"]["request"] for r in train} & {r["meta"]["request"] for r in evals}
    for r in train + evals:
        seg = _segments(r["prompt"][0]["content"])
        word = re.search(r"the (\w+) smart", r["meta"]["request"]).group(1)
        assert r["tags"] == sorted(n for n, t in seg.items() if word in t)


def test_teacher_retries_transient_failures(tmp_path: Path, teacher: tuple[str, _Teacher]) -> None:
    url, state = teacher
    state.fail_first = 2
    client = TeacherClient(url, "teacher", cache_path=tmp_path / "c.jsonl", concurrency=1, max_retries=3, backoff=0.01)
    answers = client.ask_all([[{"role": "user", "content": "#Check# please"}]])
    client.close()
    assert answers == ["#Check#: Yes"] and state.requests == 3 and client.stats.failed == 0


def test_killed_teacher_run_resumes_with_only_the_remaining_requests(
    tmp_path: Path, teacher: tuple[str, _Teacher]
) -> None:
    url, state = teacher
    state.delay = 0.15
    n = 12
    tagged = tmp_path / "tagged.jsonl"
    assert construct_main(["split", "--in", str(_many_raw(tmp_path / "raw.jsonl", n)), "--out", str(tagged),
                           "--window-tokens", "2000"]) == 0
    cache = tmp_path / "cache.jsonl"
    cmd = [sys.executable, "-m", "train", "construct", "teacher", "--in", str(tagged), "--out",
           str(tmp_path / "x.jsonl"), "--base-url", url, "--model", "teacher", "--cache", str(cache),
           "--concurrency", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while state.requests < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    cached = len(cache.read_text().splitlines())
    assert 1 <= cached < n
    before = state.requests
    state.delay = 0.0
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert state.requests - before == n - cached  # only what was not cached yet
    assert len(_read(tmp_path / "x.jsonl")) == n
    assert json.loads(rerun.stdout)["teacher"]["cache_hits"] == cached


# --- gold route -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gold")
    build_gold(out, config=GoldConfig(n_items=16, lengths=(300, 700), window_tokens=256, eval_fraction=0.25, seed=3))
    return out


def _norm(s: str) -> str:
    return " ".join(s.split()).rstrip(".").lower()


def test_gold_needles_sit_in_exactly_the_named_tags(gold_dir: Path) -> None:
    records = _read(gold_dir / "train.jsonl") + _read(gold_dir / "eval.jsonl")
    assert any(r["tags"] for r in records) and any(not r["tags"] for r in records)
    for r in records:
        segs = _segments(r["prompt"][0]["content"])
        needles = [_norm(n) for n in r["meta"]["needles"]]
        holding = sorted(n for n, t in segs.items() if any(nd in _norm(t) for nd in needles))
        assert holding == r["tags"], (r["id"], holding, r["tags"])
        named = parse_tags(r["completion"][0]["content"], len(segs))
        assert named.tags == r["tags"] and not named.failed


def test_gold_route_never_uses_eval_items_and_is_deterministic(gold_dir: Path, tmp_path: Path) -> None:
    records = _read(gold_dir / "train.jsonl") + _read(gold_dir / "eval.jsonl")
    for r in records:
        src = r["meta"]["source_id"]
        assert not src.startswith("set-")  # NeedleBench's needle sets are the needle eval's
        if r["meta"]["kind"] == "multi_hop":
            assert split_of(src) != "eval"
    train_src = {r["meta"]["source_id"] for r in _read(gold_dir / "train.jsonl")}
    eval_src = {r["meta"]["source_id"] for r in _read(gold_dir / "eval.jsonl")}
    assert not train_src & eval_src
    report = json.loads((gold_dir / "report.json").read_text())
    kept, pos = report["negatives_kept"], report["positives"]
    assert kept == min(report["negatives_available"], round(pos * 0.3 / 0.7))
    again = tmp_path / "again"
    build_gold(again, config=GoldConfig(n_items=16, lengths=(300, 700), window_tokens=256, eval_fraction=0.25, seed=3))
    assert (again / "train.jsonl").read_bytes() == (gold_dir / "train.jsonl").read_bytes()
    with pytest.raises(Exception, match="eval"):
        build_gold(tmp_path / "bad", config=GoldConfig(n_items=2, train_split="eval"))
