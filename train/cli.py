"""The ``python -m train`` entry point: dispatch to ``construct``, ``sft``, ``merge``, ``plot`` and ``bench``."""

from __future__ import annotations

import argparse
import logging
import sys

from zi_isag_tool.errors import ZiIsagError

USAGE = """\
usage: python -m train COMMAND ...

commands:
  construct   build the instruction set (split | teacher | check | build | gold | validate)
  sft         fine-tune with DeepSpeed from a YAML recipe (python -m train sft --config RECIPE.yaml)
  merge       merge a LoRA adapter into its base model and save a plain model folder
  plot        the loss curve of a run (RUN_DIR/metrics.jsonl) as a PNG
  bench       tokens/s of the cpu-smollm2 recipe and the padding a padded batch would waste

Each command takes --help.
"""


def _merge(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m train merge", description="Merge a LoRA adapter into its base.")
    parser.add_argument("--base", required=True, help="base model spec (folder, .gguf, or smollm2)")
    parser.add_argument("--adapter", required=True, help="adapter folder (OUTPUT/final of a LoRA run)")
    parser.add_argument("--out", required=True, help="folder for the merged model")
    args = parser.parse_args(argv)
    from .sft import merge_adapter

    merge_adapter(args.base, args.adapter, args.out)
    print(args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if command == "construct":
            from .construct.cli import main as construct_main

            return construct_main(rest)
        if command == "sft":
            from .sft import main as sft_main

            return sft_main(rest)
        if command == "merge":
            return _merge(rest)
        if command == "plot":
            from .plot import main as plot_main

            return plot_main(rest)
        if command == "bench":
            from .bench import main as bench_main

            return bench_main(rest)
    except ZiIsagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2
