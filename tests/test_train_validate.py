"""Bad input is reported by line number and skipped or rejected, never trained on; --help everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from train.args import parse_args
from train.cli import main as train_main
from train.construct.cli import main as construct_main
from train.construct.records import make_record
from train.data import load_examples, pack_examples, padding_share
from train.record import IGNORE_INDEX, encode_record
from train.sft import cosine_with_floor, resolve_ds_config
from zi_isag_tool.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[1]
TAGGED = "<T-1>Paris is the capital of France.</T-1><T-2> Berlin is in Germany.</T-2>"


def _good(tags: list[int] = [1]) -> dict:  # noqa: B006 (read-only default)
    return make_record(record_id="ok", fmt="tag_only", query="Capital of France?", tagged_text=TAGGED,
                       n_tags=2, tags=tags, route="test")


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen2_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen2_dir)


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    absent = _good()
    absent["completion"][0]["content"] = "#Extracted Information Tag#: [[<T-7>]]"
    long_one = make_record(record_id="long", fmt="tag_only", query="Capital?",
                           tagged_text="<T-1>" + "word " * 3000 + "</T-1>", n_tags=1, tags=[1], route="test")
    lines = [
        json.dumps(_good()),                       # 1 good
        json.dumps({"prompt": _good()["prompt"]}),  # 2 missing completion
        json.dumps(absent),                        # 3 tag absent from the prompt
        json.dumps(long_one),                      # 4 too long
        "{not json",                               # 5
        json.dumps(_good([])),                     # 6 good negative
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_records_are_reported_by_line_and_skipped(mixed_file: Path, tokenizer) -> None:
    examples, problems = load_examples(mixed_file, tokenizer, max_seq_length=2048)
    assert [e.line for e in examples] == [1, 6]
    by_line = dict(problems)
    assert sorted(by_line) == [2, 3, 4, 5]
    assert "completion" in by_line[2]
    assert "<T-7>" in by_line[3]
    assert "max_seq_length" in by_line[4]
    assert "JSON" in by_line[5]


def test_bad_records_stop_the_run_when_configured(mixed_file: Path, tokenizer) -> None:
    with pytest.raises(InputError, match=r"mixed.jsonl:2"):
        load_examples(mixed_file, tokenizer, max_seq_length=2048, on_bad_record="error")


def test_validate_command_lists_bad_lines(mixed_file: Path, tiny_qwen2_dir: Path, tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.jsonl"
    rc = construct_main(["validate", "--in", str(mixed_file), "--tokenizer", str(tiny_qwen2_dir),
                         "--max-seq-length", "2048", "--write-good", str(good)])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1 and report["good"] == 2 and [b["line"] for b in report["bad"]] == [2, 3, 4, 5]
    assert len(good.read_text().splitlines()) == 2


def test_split_reports_records_with_missing_fields(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps({"request": "q", "content": "One. Two."}) + "\n" + json.dumps({"request": "q"}) + "\n")
    out = tmp_path / "t.jsonl"
    assert construct_main(["split", "--in", str(raw), "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1
    with pytest.raises(InputError, match=r"raw.jsonl:2: missing or empty field\(s\): content"):
        construct_main(["split", "--in", str(raw), "--out", str(out), "--on-bad", "error"])


def test_labels_cover_the_completion_only(tokenizer) -> None:
    ids, labels = encode_record(_good(), tokenizer)
    n_prompt = sum(1 for x in labels if x == IGNORE_INDEX)
    rendered = tokenizer.decode(ids[n_prompt:])
    assert rendered.startswith("#Extracted Information Tag#: [[<T-1>]]<|im_end|>")
    assert tokenizer.decode(ids[:n_prompt]).endswith("<|im_start|>assistant\n")


def test_packing_has_no_padding_and_restarts_positions(tokenizer) -> None:
    from train.data import Example

    exs = [Example(tuple(range(n)), tuple([IGNORE_INDEX] * (n - 1) + [1]), i) for i, n in enumerate([5, 3, 7, 2])]
    batches = pack_examples(exs, 10, seed=0)
    assert sum(len(b.input_ids) for b in batches) == 17 and all(len(b.input_ids) <= 10 for b in batches)
    for b in batches:
        assert len(b.position_ids) == len(b.input_ids) and b.position_ids[0] == 0
    assert padding_share([5, 3, 7, 2], 4) == pytest.approx((28 - 17) / 28)


def test_schedule_and_deepspeed_auto_values() -> None:
    assert cosine_with_floor(0, total=10, warmup=0, floor=0.1) == pytest.approx(1.0)
    assert cosine_with_floor(10, total=10, warmup=0, floor=0.1) == pytest.approx(0.1)
    assert cosine_with_floor(0, total=10, warmup=2, floor=0.0) < 1.0
    model_args, data_args, sft_args, lora_args = parse_args(["--config", "paper"])
    assert (sft_args.learning_rate, sft_args.num_train_epochs, sft_args.gradient_accumulation_steps) == (5e-6, 3, 4)
    assert data_args.max_seq_length == 16384 and sft_args.deepspeed == "zero3"
    from train.sft import load_ds_config

    cfg = resolve_ds_config(load_ds_config("zero3"), sft_args, world_size=4, use_bf16=True, hidden_size=5120)
    assert cfg["train_batch_size"] == 16 and cfg["bf16"]["enabled"] is True
    assert cfg["zero_optimization"]["stage"] == 3
    off = resolve_ds_config(load_ds_config("zero3_offload"), sft_args, world_size=1, use_bf16=False, hidden_size=64)
    assert off["optimizer"]["params"]["lr"] == 5e-6
    _, _, cpu_args, cpu_lora = parse_args(["--config", "cpu-smollm2", "--learning_rate", "1e-3"])
    assert cpu_args.learning_rate == 1e-3 and cpu_lora.use_lora and cpu_args.bf16 == "false"  # CLI beats YAML
    with pytest.raises(ConfigError):
        parse_args(["--config", "does-not-exist"])


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"], ["construct", "--help"], ["sft", "--help"], ["merge", "--help"], ["plot", "--help"], ["bench", "--help"],
        *[["construct", step, "--help"] for step in ("split", "teacher", "check", "build", "gold", "validate")],
    ],
)
def test_help_exits_zero(argv: list[str], capsys) -> None:
    try:
        rc = train_main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc in (0, None)
    assert "usage" in capsys.readouterr().out.lower()


def test_module_entry_point_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "train", "sft", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "--model_name_or_path" in proc.stdout


def test_plot_writes_the_loss_curve_and_rejects_a_run_without_metrics(tmp_path: Path) -> None:
    from train.plot import plot_run

    rows = [{"step": s, "loss": 2.0 / s, "lr": 1e-4} for s in range(1, 6)] + [{"step": 5, "eval_loss": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    png = plot_run(tmp_path)
    assert png == tmp_path / "loss.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="no metrics file"):
        plot_run(tmp_path / "missing")
