"""Benchmark (not a test): training throughput of the cpu-smollm2 recipe, and the padding avoided.

    python -m train bench --steps 20 --out runs/bench

builds a small gold-route data set with SmolLM2's tokenizer (unless ``--train-file`` is given),
trains ``--steps`` optimizer steps with the cpu-smollm2 recipe, and reports

- ``tokens_per_s``: tokens through forward+backward per second over the steps after the first
  (the first pays for start-up), from ``metrics.jsonl``;
- ``padding_share_batch4``: the share of token slots that would be padding if the same examples
  were batched by 4 in training order and padded to the longest, i.e. the waste batch-1/packing avoids.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from zi_isag_tool.errors import InputError

log = logging.getLogger(__name__)


def padding_waste(train_file: str | Path, tokenizer: Any, *, max_seq_length: int, batch_size: int = 4,
                  seed: int = 42) -> dict[str, float]:
    """Padding a padded batch of ``batch_size`` would add, over the examples in training order."""
    import random

    from .data import load_examples, padding_share

    examples, _ = load_examples(train_file, tokenizer, max_seq_length=max_seq_length, formats={"tag_only"})
    lengths = [len(e) for e in examples]
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    shuffled = [lengths[i] for i in order]
    return {
        "examples": float(len(lengths)),
        "mean_tokens": sum(lengths) / len(lengths),
        "padding_share_batch4": padding_share(shuffled, batch_size),
        "padding_share_batch4_sorted": padding_share(sorted(lengths), batch_size),
    }


def run_cpu_benchmark(
    out_dir: str | Path, *, steps: int = 20, train_file: str | None = None, n_items: int = 40,
    window_tokens: int = 512, max_seq_length: int = 2048,
) -> dict[str, Any]:
    """Train ``steps`` steps of the cpu-smollm2 recipe in this process; return the two numbers."""
    from .args import parse_args
    from .model_io import load_tokenizer
    from .sft import train

    out = Path(out_dir)
    tokenizer = load_tokenizer("smollm2")
    if train_file is None:
        from zi_isag_tool.tokens import HFTokenCounter

        from .construct.gold import GoldConfig, build_gold

        build_gold(
            out / "data",
            config=GoldConfig(n_items=n_items, lengths=(300, 600, 1000), window_tokens=window_tokens,
                              formats=("tag_only",), max_seq_length=max_seq_length, eval_fraction=0.0),
            tokenizer=tokenizer, counter=HFTokenCounter(tokenizer),
        )
        train_file = str(out / "data" / "train.jsonl")
    if not Path(train_file).exists():
        raise InputError(f"{train_file} not found")
    args = parse_args([
        "--config", "cpu-smollm2", "--train_file", train_file, "--eval_file", "", "--output_dir", str(out / "run"),
        "--max_steps", str(steps), "--gradient_accumulation_steps", "1", "--save_steps", "0",
        "--resume_from_checkpoint", "none", "--merge_and_save", "false", "--max_seq_length", str(max_seq_length),
    ])
    summary = train(*args)
    rows = [json.loads(line) for line in open(out / "run" / "metrics.jsonl") if '"loss"' in line][-steps:]
    timed = rows[1:] or rows
    tokens = sum(r["tokens"] for r in timed)
    seconds = sum(r["tokens"] / r["tokens_per_s"] for r in timed)
    result = {
        "steps": steps, "tokens_per_s": tokens / seconds if seconds else 0.0,
        "mean_tokens_per_step": tokens / len(timed), "first_loss": summary["first_loss"],
        "last_loss": summary["last_loss"], "trainable_parameters": summary["trainable_parameters"],
        **padding_waste(train_file, tokenizer, max_seq_length=max_seq_length),
    }
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench", help="working folder (data, run, bench.json)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--train-file", default=None, help="records to train on (default: build gold data)")
    parser.add_argument("--n-items", type=int, default=40)
    args = parser.parse_args(argv)
    result = run_cpu_benchmark(args.out, steps=args.steps, train_file=args.train_file, n_items=args.n_items)
    print(json.dumps(result, indent=2))
    return 0
