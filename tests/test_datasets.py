"""The bundled data sets (present, licensed, found without any machine path) and the JSON-lines reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zi_isag_tool.datasets import BUNDLED, DATA_ROOT, bundled
from zi_isag_tool.datasets.jsonl import iter_json_lines, json_lines, read_json_objects
from zi_isag_tool.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_FILES = {
    "needlebench": {"PaulGrahamEssays.jsonl", "needles.jsonl", "multi_needle_reasoning_en.json"},
    "upstream_examples": {
        "raw_data_example_notag.jsonl", "raw_data_example_tag.jsonl", "extract_data_extract_info_tag.jsonl",
        "instruction_set_zi-isag_example_data_train.jsonl", "instruction_set_zi-isag_example_data_eval.jsonl",
        "synthetic_data_synthetic_data.jsonl",
    },
    "hotpotqa": {"hotpot_dev_distractor_first100.json"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_bundled_data_set_has_its_files_licence_and_attribution(name: str) -> None:
    ds = bundled(name)
    assert ds.path.parent == DATA_ROOT and ds.default.exists()
    assert {p.name for p in ds.path.iterdir()} == EXPECTED_FILES[name] | {"LICENSE", "README.md"}
    assert ds.licence and ds.source
    for file in EXPECTED_FILES[name]:
        assert ds.file(file).stat().st_size > 0


def test_bundled_lookup_errors_name_what_exists() -> None:
    assert set(BUNDLED) == set(EXPECTED_FILES)
    with pytest.raises(InputError, match="needlebench"):
        bundled("no-such-set")
    with pytest.raises(InputError, match="needles.jsonl"):
        bundled("needlebench").file("missing.jsonl")


def test_no_code_reads_a_path_of_the_development_machine() -> None:
    # The rule: an outside user has only the project, so nothing may point at /work/... or ../shared.
    machine_path = re.compile(r"/work/|\.\./shared|[\"']shared[\"']\s*/\s*[\"']data[\"']|shared/data")
    offenders = []
    for folder in ("zi_isag_tool", "evals", "train", "mcp_server", "tests"):
        for file in (ROOT / folder).rglob("*.py"):
            if file == Path(__file__).resolve():
                continue
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                if machine_path.search(line):
                    offenders.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _write_lines(path: Path) -> Path:
    rows = [json.dumps({"a": 1}), "", "  ", "{not json", json.dumps({"b": "x\u2028y"}, ensure_ascii=False), "[1, 2]"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_json_lines_reports_bad_lines_by_number_and_keeps_unicode_line_separators(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "rows.jsonl")
    rows = list(json_lines(path))
    assert [(r.number, r.value) for r in rows if r.problem is None] == [(1, {"a": 1}), (5, {"b": "x\u2028y"}), (6, [1, 2])]
    bad = [r for r in rows if r.problem is not None]
    assert [r.number for r in bad] == [4] and bad[0].problem is not None and "not valid JSON" in bad[0].problem
    assert list(json_lines(path, path.read_text(encoding="utf-8"))) == rows  # from text as from the file


def test_strict_readers_stop_at_the_bad_line(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "rows.jsonl")
    with pytest.raises(InputError, match=r"rows\.jsonl:4: not valid JSON"):
        list(iter_json_lines(path))
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": 1}\n[1]\n\n{"b": 2}\n', encoding="utf-8")
    assert read_json_objects(good) == [{"a": 1}, {"b": 2}]
