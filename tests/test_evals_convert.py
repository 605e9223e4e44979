"""The convert suite: the article-extraction metric against hand-computed values, and the suite end to end.

The metric was also checked digit for digit against upstream's ``evaluate.py`` on its 32 published
prediction files (identical floats for F1, precision, recall and accuracy); that comparison needs
upstream's repository and is not part of the suite.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from evals.article_metric import body_scores, page_counts, score_texts, shingles, tokens
from evals.cli import main
from evals.suites.convert import load_pages
from zi_isag_tool.errors import InputError


def test_tokens_are_word_runs_and_case_sensitive() -> None:
    assert tokens("Hello, world! It's 2024.") == ["Hello", "world", "It", "s", "2024"]
    assert shingles("Hello, world! It's 2024.") == {("Hello", "world", "It", "s"): 1, ("world", "It", "s", "2024"): 1}
    assert shingles("just three words") == {("just", "three", "words"): 1}  # shorter than 4: one shingle
    assert shingles(" ,;  ") == {}
    assert page_counts("Word one two three", "word one two three").tp == 0.0


def test_page_counts_are_normalised_multisets() -> None:
    # true: abcd bcde cdef; pred: abcd bcde cdex -> TP 2, FP 1, FN 1, divided by 4
    counts = page_counts("a b c d e f", "a b c d e x")
    assert (counts.tp, counts.fp, counts.fn) == (0.5, 0.25, 0.25)
    assert counts.precision == pytest.approx(2 / 3) and counts.recall == pytest.approx(2 / 3)
    # true: xyzw twice, yzwx, zwxy, wxyz; pred: xyzw once -> TP 1, FN 4: precision 1, recall 1/5
    counts = page_counts("x y z w x y z w", "x y z w")
    assert (counts.tp, counts.fp, counts.fn) == (0.2, 0.0, 0.8)
    assert (counts.precision, counts.recall) == (1.0, 0.2)


def test_macro_scores_by_hand() -> None:
    truth = {"A": "a b c d e f", "B": "x y z w x y z w", "C": "p q r s t", "D": "", "E": "same text here now", "F": ""}
    pred = {"A": "a b c d e x", "B": "x y z w", "C": "", "D": "m n", "E": "same, text -- here now!", "F": ""}
    # precision over pages with predicted shingles (A, B, D, E): (2/3 + 1 + 0 + 1) / 4 = 2/3
    # recall over pages with true shingles (A, B, C, E): (2/3 + 1/5 + 0 + 1) / 4 = 7/15
    # F1 = 2 * 2/3 * 7/15 / (2/3 + 7/15) = 28/51; accuracy: E and F have equal tokens -> 2/6
    scores = score_texts(truth, pred)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(7 / 15)
    assert scores.f1 == pytest.approx(28 / 51)
    assert scores.accuracy == pytest.approx(1 / 3)
    assert scores.pages == 6
    assert score_texts({"A": "a b c d e f"}, {}).recall == 0.0  # a missing prediction is an empty one
    assert body_scores([]).f1 == 0.0


ARTICLE = (
    "<html><head><title>{title}</title></head><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav>"
    "<article><h1>{title}</h1><p>{body} See <a href='https://ref.example/{n}'>the full report number {n}</a> "
    "for the method and <a href='https://ref.example/data/{n}'>the raw data</a> behind it.</p>"
    "<p>The second paragraph repeats that the measurements were taken every summer for ten years "
    "along the same stretch of coast, by the same team of volunteers and researchers.</p></article>"
    "<footer>Copyright 2026</footer></body></html>"
)


def _folder(root: Path, n: int = 3) -> Path:
    (root / "html").mkdir(parents=True)
    truth = {}
    for i in range(n):
        title = f"Tide pool survey {i}"
        body = f"Researchers counted {i + 3} species of sea star in the pools during the survey of year {2020 + i}."
        html = ARTICLE.format(title=title, body=body, n=i)
        (root / "html" / f"page{i}.html.gz").write_bytes(gzip.compress(html.encode("utf-8")))
        article = f"{title}\n{body} See the full report number {i} for the method and the raw data behind it.\n"
        article += (
            "The second paragraph repeats that the measurements were taken every summer for ten years along the "
            "same stretch of coast, by the same team of volunteers and researchers."
        )
        truth[f"page{i}"] = {"articleBody": article, "url": f"https://news.example/survey/{i}"}
    (root / "ground-truth.json").write_text(json.dumps(truth), encoding="utf-8")
    return root


def test_load_pages_sample_and_bad_folders(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "bench", n=5)
    (folder / "html" / "page4.html.gz").unlink()
    pages, missing = load_pages(folder)
    assert [p.id for p in pages] == ["page0", "page1", "page2", "page3"] and missing == ["page4"]
    assert pages[0].url == "https://news.example/survey/0" and "Tide pool survey 0" in pages[0].html
    sample, _ = load_pages(folder, limit=2, seed=1)
    assert len(sample) == 2 and sample == load_pages(folder, limit=2, seed=1)[0]
    with pytest.raises(InputError, match="article-extraction"):
        load_pages(tmp_path / "nowhere")


def test_convert_suite_end_to_end(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "bench")
    out = tmp_path / "out"
    code = main(["convert", "--data", str(folder), "--extractor", "full,bm25", "--repeats", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    suite = results["suites"]["convert"]
    assert set(suite) == {"zi-isag", "zi-isag+links", "trafilatura"}
    for metrics in suite.values():
        assert 0.0 <= metrics["f1"] <= 1.0 and metrics["pages"] == 3 and metrics["errors"] == 0
        assert metrics["pages_per_s"] > 0 and metrics["ms_per_page"] > 0
    assert suite["trafilatura"]["time_vs_trafilatura"] == 1.0
    ours, linked = suite["zi-isag"], suite["zi-isag+links"]
    # Link targets are tokens the annotated body does not have: they cost precision and tokens.
    assert ours["precision"] > linked["precision"] and ours["content_tokens"] < linked["content_tokens"]
    assert ours["recall"] == pytest.approx(1.0)
    kept = ours["kept_tokens"]
    assert kept["full"]["links_dropped"] < kept["full"]["links_kept"] and 0 < kept["full"]["reduction"] < 1
    assert set(kept["bm25"]) == {"links_dropped", "links_kept", "reduction"}
    assert results["info"]["convert"]["pages"] == 3 and 0 < results["info"]["convert"]["link_token_share"] < 1
    report = (out / "report.md").read_text()
    assert "| converter | F1 |" in report and "| zi-isag+links |" in report and "| full |" in report


def test_convert_suite_without_data_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["convert", "--out", str(out), "--no-progress", "--extractor", "full"]) == 1
    info = json.loads((out / "results.json").read_text())["info"]["convert"]
    assert "--data" in info["error"] and "ground-truth.json" in info["error"]
