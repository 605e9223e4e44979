"""SFT under DeepSpeed on CPU with the tiny random Qwen2: loss falls, saves, loads into the extractor.

Each run is a real ``python -m train sft`` subprocess (one DeepSpeed world of one rank over gloo).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from train.construct.records import make_record
from zi_isag_tool.extractors.transformers_lm import TransformersExtractor
from zi_isag_tool.types import Segment, TaggedWindow

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _window(texts: list[str]) -> TaggedWindow:
    segs, pos = [], 0
    for t in texts:
        segs.append(Segment(pos, pos + len(t)))
        pos += len(t)
    tagged = "".join(f"<T-{i}>{t}</T-{i}>" for i, t in enumerate(texts, 1))
    return TaggedWindow(0, 0, 1, tuple(segs), tagged, tuple(texts))


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("sft-data") / "train.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(8):
            texts = [f"Sentence {k} is about topic {rng.randint(0, 9)}." for k in range(1, 5)]
            w = _window(texts)
            tags = [1 + i % 4] if i % 4 else []
            rec = make_record(record_id=f"r{i}", fmt="tag_only", query=f"What about topic {i}?",
                              tagged_text=w.tagged_text, n_tags=w.n_tags, tags=tags, route="test")
            fh.write(json.dumps(rec) + "\n")
    return path


def _sft(model: Path, data: Path, out: Path, *extra: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DS_ACCELERATOR": "cpu"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # a fresh world of one, on a free port chosen by the trainer
    cmd = [
        sys.executable, "-m", "train", "sft", "--model_name_or_path", str(model), "--train_file", str(data),
        "--output_dir", str(out), "--max_seq_length", "2048", "--learning_rate", "3e-3", "--warmup_ratio", "0",
        "--min_learning_rate", "3e-4", "--logging_steps", "1", *extra,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def _answers_through_parser(model_path: Path) -> None:
    ext = TransformersExtractor(str(model_path), max_new_tokens=16, batch_size=2)
    windows = [_window(["Sentence 1 is about topic 3.", " Sentence 2 is about topic 5."])]
    [sel] = ext.extract("What about topic 3?", windows)
    assert sel.raw_output is not None and sel.output_tokens > 0
    assert all(1 <= t <= 2 for t in sel.tags)  # whatever it says, the parser kept only real ids
    assert sel.failed == (sel.error is not None)


def test_zero2_full_finetune_loss_falls_resumes_and_loads(tiny_qwen2_dir: Path, sft_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "z2"
    first = _sft(tiny_qwen2_dir, sft_data, out, "--deepspeed", "zero2", "--max_steps", "3", "--save_steps", "3",
                 "--gradient_checkpointing", "false")
    assert first["steps"] == 3 and (out / "checkpoints" / "step-3").is_dir()
    # Rerun with a longer horizon: resumes from the checkpoint and trains only steps 4..6.
    second = _sft(tiny_qwen2_dir, sft_data, out, "--deepspeed", "zero2", "--max_steps", "6",
                  "--gradient_checkpointing", "false")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert second["steps"] == 6
    losses = _losses(out)
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses
    assert all(r["tokens"] > 0 and r["lr"] > 0 for r in rows if "loss" in r)
    _answers_through_parser(out / "final")


def test_zero3_full_finetune_with_checkpointing(tiny_qwen2_dir: Path, sft_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "z3"
    summary = _sft(tiny_qwen2_dir, sft_data, out, "--deepspeed", "zero3", "--max_steps", "4",
                   "--gradient_checkpointing", "true", "--eval_file", str(sft_data), "--max_train_samples", "6")
    losses = _losses(out)
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    assert summary["eval_loss"] is not None
    config = json.loads((out / "run_config.json").read_text())
    assert config["deepspeed"]["zero_optimization"]["stage"] == 3 and config["bf16"] is False
    _answers_through_parser(out / "final")


def test_lora_adapter_and_merged_model_load(tiny_qwen2_dir: Path, sft_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "lora"
    summary = _sft(tiny_qwen2_dir, sft_data, out, "--deepspeed", "zero2", "--max_steps", "4", "--use_lora",
                   "--lora_target_modules", "all-linear", "--learning_rate", "1e-2", "--merge_and_save",
                   "--gradient_checkpointing", "false", "--logging_steps", "2")
    assert summary["trainable_parameters"] < 50_000
    losses = _losses(out)
    assert losses[-1] < losses[0], losses
    adapter_config = json.loads((out / "final" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_qwen2_dir.resolve())
    assert len(losses) == 2  # --logging_steps 2 over 4 steps: one line per interval
    assert (out / "merged" / "config.json").is_file()
    _answers_through_parser(out / "final")  # adapter folder: base named in adapter_config.json
    _answers_through_parser(out / "merged")


def test_time_budget_stops_early_and_still_saves(tiny_qwen2_dir: Path, sft_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "budget"
    summary = _sft(tiny_qwen2_dir, sft_data, out, "--deepspeed", "zero2", "--max_steps", "50",
                   "--max_train_seconds", "0.001", "--gradient_checkpointing", "false")
    assert summary["steps"] == 1 and summary["total_steps"] == 50 and summary["stopped_early"] is True
    assert (out / "final" / "config.json").is_file()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_examples_do_not_attend_to_each_other(tiny_qwen2_dir: Path, attn: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from train.data import Batch
    from train.sft import _tensors

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir, attn_implementation=attn).eval()
    first, second = [5, 9, 13, 7, 21, 3, 8], [11, 4, 17, 6, 2]
    ids = tuple(first + second)
    packed = Batch(input_ids=ids, labels=ids, position_ids=(*range(7), *range(5)), n_examples=2)
    with torch.no_grad():
        together = model(**_tensors(packed, "cpu", attn_implementation=attn)).logits[0]
        alone = [model(input_ids=torch.tensor([x])).logits[0] for x in (first, second)]
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=1e-4)
