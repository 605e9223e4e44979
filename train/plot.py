"""``python -m train plot RUN_DIR``: the loss curve of a run as a PNG, from its ``metrics.jsonl``.

Training loss per metrics line (the mean over its logging interval) and, where the run evaluated,
the eval loss, against the optimizer step; the learning rate on a second axis.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zi_isag_tool.errors import InputError

from .construct.records import read_jsonl


def read_metrics(path: Path) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """``(train_rows, eval_rows)`` of a ``metrics.jsonl``."""
    if not path.is_file():
        raise InputError(f"no metrics file at {path}: give a run's output_dir (it holds metrics.jsonl)")
    train_rows, eval_rows = [], []
    for _, row in read_jsonl(path):  # raises InputError naming the bad line
        if "loss" in row:
            train_rows.append(row)
        elif "eval_loss" in row:
            eval_rows.append(row)
    if not train_rows:
        raise InputError(f"{path} holds no training loss")
    return train_rows, eval_rows


def plot_run(run_dir: str | Path, out: str | Path | None = None, *, title: str | None = None) -> Path:
    """Write the loss curve of ``run_dir`` to ``out`` (default ``RUN_DIR/loss.png``) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    train_rows, eval_rows = read_metrics(run / "metrics.jsonl")
    target = Path(out) if out else run / "loss.png"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], label="train loss", lw=1.2)
    if eval_rows:
        ax.plot([r["step"] for r in eval_rows], [r["eval_loss"] for r in eval_rows], "o", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (completion tokens)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    lr_axis = ax.twinx()
    lr_axis.plot([r["step"] for r in train_rows], [r["lr"] for r in train_rows], color="grey", ls="--", lw=0.8)
    lr_axis.set_ylabel("learning rate", color="grey")
    ax.legend(loc="upper right")
    ax.set_title(title or run.name)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    plt.close(fig)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run's output_dir (holds metrics.jsonl)")
    parser.add_argument("--out", help="PNG path (default RUN_DIR/loss.png)")
    parser.add_argument("--title", help="plot title (default: the folder name)")
    args = parser.parse_args(argv)
    print(plot_run(args.run_dir, args.out, title=args.title))
    return 0
