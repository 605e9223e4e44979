"""``python -m train construct STEP ...``: one subcommand per construction step.

Teacher route (ZI-ISAG's four steps)::

    python -m train construct split   --in raw.jsonl --out tagged.jsonl --window-tokens 1024 --tokenizer smollm2
    python -m train construct teacher --in tagged.jsonl --out extracted.jsonl \\
        --base-url http://127.0.0.1:8000/v1 --model Qwen2.5-72B-Instruct --cache teacher-cache.jsonl
    python -m train construct check   --in extracted.jsonl --out checked.jsonl --base-url ... --model ... --cache ...
    python -m train construct build   --in checked.jsonl --out-dir data/teacher --negative-ratio 0.3 \\
        --tokenizer smollm2 --max-seq-length 4096

Gold route (no teacher)::

    python -m train construct gold --out-dir data/gold --n-items 300 --window-tokens 1024 --tokenizer smollm2

Check a file of records (also done while building and before training)::

    python -m train construct validate --in data/gold/train.jsonl --tokenizer smollm2 --max-seq-length 4096
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from zi_isag_tool.errors import ConfigError

log = logging.getLogger(__name__)


def _counter_and_tokenizer(spec: str | None) -> tuple[Any, Any]:
    from zi_isag_tool.tokens import HFTokenCounter, default_counter

    if not spec:
        return default_counter(), None
    from ..model_io import load_tokenizer

    tok = load_tokenizer(spec)
    return HFTokenCounter(tok, name=spec), tok


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-bad", choices=("skip", "error"), default="skip",
                   help="a bad input line: log it with its line number and skip it, or stop (default skip)")


def _add_tokenizer(p: argparse.ArgumentParser, *, seq: bool = True) -> None:
    p.add_argument("--tokenizer", default=None,
                   help="model whose tokenizer counts window tokens and renders the chat template "
                        "(folder, .gguf or smollm2); default: o200k_base counting, no template check")
    if seq:
        p.add_argument("--max-seq-length", type=int, default=None,
                       help="reject records longer than this many tokens (needs --tokenizer)")


def _add_teacher(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", required=True, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="teacher model name at that endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--cache", default=None, help="resumable answer cache (default: OUT + '.cache.jsonl')")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--max-retries", type=int, default=3)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-tokens", type=int, default=2048)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train construct",
        description="Build the tag-only extractor's instruction set (teacher route or gold route).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = parser.add_subparsers(dest="step", required=True)

    p = sub.add_parser("split", help="1. split and tag raw {request, content} pages into windows")
    p.add_argument("--in", dest="inp", required=True, help="JSONL of {request, content}")
    p.add_argument("--out", required=True, help="JSONL of tagged windows {id, request, tagged_content, n_tags}")
    p.add_argument("--window-tokens", type=int, default=1024, help="tagged content per window (extractor's size)")
    _add_tokenizer(p, seq=False)
    _add_common(p)

    p = sub.add_parser("teacher", help="2. ask the teacher for info+tag answers (cached, resumable)")
    p.add_argument("--in", dest="inp", required=True, help="JSONL of {request, tagged_content} (split's output)")
    p.add_argument("--out", required=True, help="JSONL with extractInfoTag / extractTag added")
    _add_teacher(p)
    _add_common(p)

    p = sub.add_parser("check", help="3. double-check positives and negatives with the teacher")
    p.add_argument("--in", dest="inp", required=True, help="teacher step output")
    p.add_argument("--out", required=True, help="JSONL of the confirmed rows")
    _add_teacher(p)
    _add_common(p)

    p = sub.add_parser("build", help="4. write prompt/completion records (both formats) + eval split")
    p.add_argument("--in", dest="inp", required=True, help="check step output (or teacher step output)")
    p.add_argument("--out-dir", required=True, help="gets train.jsonl, eval.jsonl, report.json")
    p.add_argument("--formats", default="tag_only,info_tag", help="comma-separated: tag_only, info_tag")
    p.add_argument("--negative-ratio", type=float, default=0.3, help="largest share of negatives kept")
    p.add_argument("--eval-fraction", type=float, default=0.1, help="share of requests held out for eval")
    p.add_argument("--seed", type=int, default=0)
    _add_tokenizer(p)
    _add_common(p)

    p = sub.add_parser("gold", help="synthesise examples with known tags from needles in haystacks")
    p.add_argument("--out-dir", required=True, help="gets train.jsonl, eval.jsonl, report.json")
    p.add_argument("--n-items", type=int, default=200, help="positive documents to build")
    p.add_argument("--lengths", default="500,1000,2000,4000", help="document lengths in tokens")
    p.add_argument("--depths", default="0,25,50,75,100", help="needle depths in percent")
    p.add_argument("--window-tokens", type=int, default=1024, help="tagged content per window (extractor's size)")
    p.add_argument("--negative-ratio", type=float, default=0.3)
    p.add_argument("--hop-share", type=float, default=0.7, help="share of documents from multi-hop items")
    p.add_argument("--train-split", default="calib",
                   help="multi-hop items with needlebench.split_of(id) == this (never 'eval')")
    p.add_argument("--needle-sets", default=None, help="JSONL {needles, request} (default: ZI-ISAG synthetic sets)")
    p.add_argument("--needle-language", choices=("en", "all"), default="en")
    p.add_argument("--include-needlebench-sets", action="store_true",
                   help="also use NeedleBench's 4 needle sets (the needle eval scores them: leaks)")
    p.add_argument("--data-dir", default=None, help="needlebench data folder (default: the copy bundled with the package)")
    p.add_argument("--formats", default="tag_only,info_tag")
    p.add_argument("--eval-fraction", type=float, default=0.1, help="share of sources held out for eval")
    p.add_argument("--seed", type=int, default=0)
    _add_tokenizer(p)
    _add_common(p)

    p = sub.add_parser("validate", help="check records: tags exist in the prompt, length fits, template renders")
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--write-good", default=None, help="write the records that pass here")
    _add_tokenizer(p)
    return parser


def _formats(value: str) -> tuple[Any, ...]:
    from .records import FORMATS

    out = tuple(f.strip() for f in value.split(",") if f.strip())
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ConfigError(f"--formats takes {', '.join(FORMATS)}; got {value!r}")
    return out


def _client(args: argparse.Namespace) -> Any:
    from .teacher_client import TeacherClient

    return TeacherClient(
        args.base_url, args.model, api_key=os.environ.get(args.api_key_env),
        cache_path=args.cache or f"{args.out}.cache.jsonl", concurrency=args.concurrency,
        max_retries=args.max_retries, timeout=args.timeout, temperature=args.temperature,
        max_tokens=args.max_tokens,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "max_seq_length", None) and not args.tokenizer:
        raise ConfigError("--max-seq-length needs --tokenizer (lengths are in the model's tokens)")
    status = 0
    if args.step == "split":
        from .teacher import split_records

        counter, _ = _counter_and_tokenizer(args.tokenizer)
        result: dict[str, Any] = split_records(
            args.inp, args.out, counter=counter, window_tokens=args.window_tokens, on_bad=args.on_bad
        )
    elif args.step in ("teacher", "check"):
        from .teacher import teacher_check, teacher_extract

        client = _client(args)
        try:
            step = teacher_extract if args.step == "teacher" else teacher_check
            result = step(args.inp, args.out, client, on_bad=args.on_bad)
        finally:
            client.close()
        if result.get("missing"):
            log.error("%d request(s) got no answer; rerun the same command to ask only for those", result["missing"])
            status = 1
    elif args.step == "build":
        from .teacher import BuildConfig, build_instruction_set

        _, tok = _counter_and_tokenizer(args.tokenizer)
        config = BuildConfig(
            formats=_formats(args.formats), negative_ratio=args.negative_ratio, eval_fraction=args.eval_fraction,
            max_seq_length=args.max_seq_length, seed=args.seed, on_bad=args.on_bad,
        )
        result = build_instruction_set(args.inp, args.out_dir, tokenizer=tok, config=config).to_dict()
    elif args.step == "gold":
        from .gold import GoldConfig, build_gold

        counter, tok = _counter_and_tokenizer(args.tokenizer)
        gold_kwargs: dict[str, Any] = {}
        if args.needle_sets:
            gold_kwargs["needle_sets_file"] = args.needle_sets
        config_g = GoldConfig(
            n_items=args.n_items, lengths=[int(x) for x in args.lengths.split(",")],
            depths=[float(x) for x in args.depths.split(",")], window_tokens=args.window_tokens,
            negative_ratio=args.negative_ratio, hop_share=args.hop_share, train_split=args.train_split,
            needle_language=args.needle_language, include_needlebench_sets=args.include_needlebench_sets,
            formats=_formats(args.formats), eval_fraction=args.eval_fraction, seed=args.seed,
            max_seq_length=args.max_seq_length, on_bad=args.on_bad, data_dir=args.data_dir, **gold_kwargs,
        )
        result = build_gold(args.out_dir, config=config_g, tokenizer=tok, counter=counter).to_dict()
    else:
        from .validate import validate_file

        _, tok = _counter_and_tokenizer(args.tokenizer)
        report = validate_file(args.inp, tok, max_seq_length=args.max_seq_length, write_good=args.write_good)
        result = report.to_dict()
        status = 1 if report.bad else 0
    print(json.dumps(result, ensure_ascii=False))
    sys.stdout.flush()
    return status
