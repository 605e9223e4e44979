"""Supervised fine-tuning of a tag-only extractor with DeepSpeed (a short, hand-written loop).

Single node, 4 GPUs (the paper recipe)::

    deepspeed --num_gpus 4 -m train sft --config train/recipes/paper.yaml \\
        --model_name_or_path /models/Qwen2.5-14B-Instruct --train_file data/train.jsonl

Multi-node (a hostfile lists ``hostname slots=N`` per node; see train/README.md)::

    deepspeed --hostfile hostfile --master_addr node1 -m train sft --config train/recipes/paper.yaml ...

On a laptop / CPU (one process; no launcher needed)::

    python -m train sft --config train/recipes/cpu-smollm2.yaml --train_file out/gold/train.jsonl

Loss is on the completion tokens only; every micro-batch is one unpadded sequence (one example, or
several packed with restarting position ids); cosine schedule with warm-up and a floor; gradient
checkpointing; bf16 on GPU, fp32 on CPU; optional LoRA (peft) with merge-and-save. The output
directory gets ``metrics.jsonl``, ``checkpoints/`` (DeepSpeed, resumable), ``final/`` (a model
folder, or an adapter folder with LoRA) and ``merged/`` (LoRA merged into the base, on request):
``final/`` and ``merged/`` load directly into the ``transformers`` extractor by path.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import random
import shutil
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from zi_isag_tool.errors import ConfigError

from .args import DataArguments, LoraArguments, ModelArguments, SFTArguments, parse_args
from .data import Batch, load_examples, pack_examples, single_batches

log = logging.getLogger("train.sft")

DEEPSPEED_DIR = Path(__file__).parent / "deepspeed"


# --- distributed setup ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup_distributed() -> tuple[int, int, int, Any]:
    """``(rank, world_size, local_rank, device)``; a lone ``python -m train sft`` becomes rank 0 of 1."""
    import torch

    if "RANK" not in os.environ:  # not started by a launcher: a world of one on this host
        os.environ.update(
            RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
            MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT") or str(_free_port()),
        )
    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return rank, world, local_rank, device


# --- DeepSpeed config -------------------------------------------------------------------------


def load_ds_config(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if not path.exists():
        shipped = DEEPSPEED_DIR / f"{name_or_path.removesuffix('.json')}.json"
        if not shipped.exists():
            names = ", ".join(sorted(p.stem for p in DEEPSPEED_DIR.glob("*.json")))
            raise ConfigError(f"DeepSpeed config {name_or_path!r} not found (a JSON path or one of: {names})")
        path = shipped
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"DeepSpeed config {path} is not valid JSON: {exc}") from exc


def resolve_ds_config(
    config: dict[str, Any], args: SFTArguments, *, world_size: int, use_bf16: bool, hidden_size: int | None
) -> dict[str, Any]:
    """Fill the ``"auto"`` values from the arguments (as the HF Trainer does for its configs)."""
    cfg = json.loads(json.dumps(config))

    def fill(section: dict[str, Any], key: str, value: Any) -> None:
        if section.get(key, "auto") == "auto":
            section[key] = value

    gas = args.gradient_accumulation_steps
    fill(cfg, "train_micro_batch_size_per_gpu", 1)
    fill(cfg, "gradient_accumulation_steps", gas)
    fill(cfg, "train_batch_size", gas * world_size)
    fill(cfg, "gradient_clipping", args.max_grad_norm)
    for key, expected in (("train_micro_batch_size_per_gpu", 1), ("gradient_accumulation_steps", gas)):
        if cfg[key] != expected:
            raise ConfigError(f"DeepSpeed config sets {key}={cfg[key]}, but the run needs {expected}; use 'auto'")
    bf16 = cfg.setdefault("bf16", {})
    fill(bf16, "enabled", use_bf16)
    if cfg.get("fp16", {}).get("enabled") == "auto":
        cfg["fp16"]["enabled"] = False
    opt = cfg.get("optimizer")
    if opt:
        params = opt.setdefault("params", {})
        fill(params, "lr", args.learning_rate)
        fill(params, "betas", [args.adam_beta1, args.adam_beta2])
        fill(params, "eps", args.adam_epsilon)
        fill(params, "weight_decay", args.weight_decay)
    if "scheduler" in cfg:  # the cosine-with-floor schedule below is the one used
        log.warning("ignoring the DeepSpeed config's scheduler section; the recipe's cosine schedule is used")
        del cfg["scheduler"]
    zero = cfg.setdefault("zero_optimization", {"stage": 0})
    h = hidden_size or 1024
    fill(zero, "reduce_bucket_size", h * h)
    if zero.get("stage") == 3:
        fill(zero, "stage3_prefetch_bucket_size", int(0.9 * h * h))
        fill(zero, "stage3_param_persistence_threshold", 10 * h)
    leftover = [k for k, v in _walk(cfg) if v == "auto"]
    if leftover:
        raise ConfigError(f"DeepSpeed config has 'auto' values this trainer cannot fill: {', '.join(leftover)}")
    return cfg


def _walk(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _walk(v, f"{prefix}{k}.")
        else:
            out.append((prefix + k, v))
    return out


class _Zero3InitConfig:
    """What transformers asks of its DeepSpeed-config holder to build a model under ``zero.Init``.

    transformers' own ``HfDeepSpeedConfig`` needs accelerate; this is the two-member interface that
    ``is_deepspeed_zero3_enabled()`` / ``deepspeed_config()`` read, so a 34B model is partitioned
    across ranks while it loads instead of being materialised whole on every rank.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def is_zero3(self) -> bool:
        return True


# --- schedule ---------------------------------------------------------------------------------


def cosine_with_floor(step: int, *, total: int, warmup: int, floor: float) -> float:
    """LR multiplier: linear warm-up, then cosine from 1 down to ``floor`` (min_lr / lr)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


# --- the run ----------------------------------------------------------------------------------


def _use_bf16(flag: str, cuda: bool) -> bool:
    if flag.lower() == "auto":
        return cuda
    wanted = flag.lower() == "true"
    if wanted and not cuda:
        log.warning("bf16 requested on CPU: bf16 matmuls are slow there; training in bf16 anyway")
    return wanted


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    order = list(range(n))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return tuple(order)


def _shard_index(micro: int, *, per_epoch: int, n: int, rank: int, world: int, seed: int) -> int:
    """Index of the batch this rank trains on at micro-step ``micro`` (fresh seeded order each epoch)."""
    epoch, pos = divmod(micro, per_epoch)
    return _epoch_order(n, seed, epoch)[(pos * world + rank) % n]


def packed_attention_mask(position_ids: tuple[int, ...], *, dtype: Any, device: Any) -> Any:
    """Additive 4D mask ``[1, 1, L, L]``: causal, and each packed example sees only itself.

    sdpa and eager attention ignore restarting position ids (only flash-attention reads them as
    sequence boundaries), so without this mask a packed example would attend to the ones before it.
    """
    import torch

    pos = torch.tensor(position_ids, device=device)
    example = torch.cumsum((pos == 0).to(torch.long), 0)
    n = len(position_ids)
    allowed = torch.ones(n, n, dtype=torch.bool, device=device).tril_() & (example[:, None] == example[None, :])
    mask = torch.zeros(1, 1, n, n, dtype=dtype, device=device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


def _tensors(batch: Batch, device: Any, *, attn_implementation: str = "sdpa", dtype: Any = None) -> dict[str, Any]:
    import torch

    tensors = {
        "input_ids": torch.tensor([batch.input_ids], dtype=torch.long, device=device),
        "labels": torch.tensor([batch.labels], dtype=torch.long, device=device),
        "position_ids": torch.tensor([batch.position_ids], dtype=torch.long, device=device),
    }
    if batch.n_examples > 1 and "flash" not in attn_implementation:
        tensors["attention_mask"] = packed_attention_mask(
            batch.position_ids, dtype=dtype or torch.float32, device=device
        )
    return tensors


def _latest_checkpoint(ckpt_root: Path) -> Path | None:
    latest = ckpt_root / "latest"
    if latest.is_file():
        tag = latest.read_text().strip()
        if (ckpt_root / tag).is_dir():
            return ckpt_root / tag
    return None


def train(
    model_args: ModelArguments, data_args: DataArguments, args: SFTArguments, lora_args: LoraArguments
) -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    rank, world, _local_rank, device = setup_distributed()
    import deepspeed
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    from .model_io import load_causal_lm, load_tokenizer

    is_main = rank == 0
    out = Path(args.output_dir)
    ckpt_root = out / "checkpoints"
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    cuda = device.type == "cuda"
    use_bf16 = _use_bf16(args.bf16, cuda)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    # Data: validated and tokenised the same way on every rank (deterministic), then sharded.
    tokenizer = load_tokenizer(model_args.tokenizer_name_or_path or model_args.model_name_or_path)
    examples, skipped = load_examples(
        data_args.train_file, tokenizer, max_seq_length=data_args.max_seq_length,
        formats=data_args.format_set, on_bad_record=data_args.on_bad_record, limit=data_args.max_train_samples,
    )
    batches = (
        pack_examples(examples, data_args.max_seq_length, seed=args.seed) if data_args.packing else single_batches(examples)
    )
    eval_batches: list[Batch] = []
    if data_args.eval_file:
        eval_examples, _ = load_examples(
            data_args.eval_file, tokenizer, max_seq_length=data_args.max_seq_length,
            formats=data_args.format_set, on_bad_record=data_args.on_bad_record,
        )
        eval_batches = single_batches(eval_examples)
    gas = args.gradient_accumulation_steps
    per_epoch = math.ceil(len(batches) / world)
    if args.max_steps > 0:
        total_steps = args.max_steps
    else:
        total_steps = max(1, int(per_epoch * args.num_train_epochs) // gas)
    total_micro = total_steps * gas
    warmup = math.ceil(args.warmup_ratio * total_steps)
    if is_main:
        log.info(
            "%d examples (%d skipped) -> %d sequences; %d steps x %d accumulation x %d ranks",
            len(examples), len(skipped), len(batches), total_steps, gas, world,
        )

    # Model.
    from transformers import AutoConfig

    from .model_io import resolve_base

    base_spec = resolve_base(model_args.model_name_or_path)
    cfg_kwargs = {"gguf_file": base_spec.gguf_file} if base_spec.gguf_file else {}
    hf_config = AutoConfig.from_pretrained(str(base_spec.path), local_files_only=True, **cfg_kwargs)
    text_cfg = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
    ds_config = resolve_ds_config(
        load_ds_config(args.deepspeed), args, world_size=world, use_bf16=use_bf16,
        hidden_size=getattr(text_cfg, "hidden_size", None),
    )
    stage = int(ds_config.get("zero_optimization", {}).get("stage", 0))
    zero3_holder = None
    if stage == 3 and not base_spec.gguf_file:
        zero3_holder = _Zero3InitConfig(ds_config)  # must stay referenced while the model loads
        set_hf_deepspeed_config(zero3_holder)
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    model = load_causal_lm(
        model_args.model_name_or_path, dtype=dtype, attn_implementation=model_args.attn_implementation,
        trust_remote_code=model_args.trust_remote_code,
    )
    model.config.use_cache = False

    def inputs(batch: Batch) -> dict[str, Any]:
        return _tensors(batch, device, attn_implementation=model_args.attn_implementation, dtype=dtype)
    if args.gradient_checkpointing:
        kwargs = {"use_reentrant": False}  # non-reentrant: works with frozen bases (LoRA) and ZeRO-3
        if hasattr(model, "activation_checkpointing_enable"):  # the transformers 5.2x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if lora_args.use_lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=lora_args.lora_r, lora_alpha=lora_args.lora_alpha, lora_dropout=lora_args.lora_dropout,
                target_modules=lora_args.target_modules, task_type="CAUSAL_LM",
            ),
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in trainable)

    optimizer = None
    if "optimizer" not in ds_config:
        optimizer = torch.optim.AdamW(
            trainable, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon,
            weight_decay=args.weight_decay,
        )
    floor = args.min_learning_rate / args.learning_rate if args.learning_rate > 0 else 0.0

    def make_scheduler(opt: Any) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: cosine_with_floor(s, total=total_steps, warmup=warmup, floor=floor)
        )

    engine, _, _, scheduler = deepspeed.initialize(
        model=model, model_parameters=trainable, optimizer=optimizer, lr_scheduler=make_scheduler, config=ds_config,
    )

    # Resume.
    global_step = 0
    resume: Path | None = None
    if args.resume_from_checkpoint == "auto":
        resume = _latest_checkpoint(ckpt_root)
    elif args.resume_from_checkpoint.lower() != "none":
        resume = Path(args.resume_from_checkpoint)
        if not resume.is_dir():
            raise ConfigError(f"resume_from_checkpoint {resume} is not a checkpoint folder")
    if resume is not None:
        loaded, client = engine.load_checkpoint(str(resume.parent), tag=resume.name)
        if loaded is None:
            raise ConfigError(f"could not load the DeepSpeed checkpoint {resume}")
        global_step = int(client.get("global_step", 0))
        if is_main:
            log.info("resumed from %s at step %d", resume, global_step)

    if is_main:
        (out / "run_config.json").write_text(
            json.dumps(
                {
                    "model": asdict(model_args), "data": asdict(data_args), "training": asdict(args),
                    "lora": asdict(lora_args), "deepspeed": ds_config, "world_size": world,
                    "bf16": use_bf16, "trainable_parameters": n_trainable,
                },
                indent=2,
            )
        )
    metrics_path = out / "metrics.jsonl"

    def log_metrics(row: dict[str, Any]) -> None:
        if is_main:
            with open(metrics_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    def reduce_sum(*values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        if world > 1:
            dist.all_reduce(t)
        return t.tolist()

    def evaluate() -> float | None:
        if not eval_batches:
            return None
        engine.eval()
        total = count = 0.0
        per_rank = math.ceil(len(eval_batches) / world)
        with torch.no_grad():
            for k in range(per_rank):
                idx = k * world + rank
                batch = eval_batches[idx % len(eval_batches)]
                loss = engine(**inputs(batch)).loss
                if idx < len(eval_batches):  # the wrapped extra only keeps ZeRO-3's collectives in step
                    n = sum(1 for x in batch.labels[1:] if x != -100)
                    total += float(loss) * n
                    count += n
        engine.train()
        total, count = reduce_sum(total, count)
        return total / count if count else None

    def save_checkpoint() -> None:
        engine.save_checkpoint(
            str(ckpt_root), tag=f"step-{global_step}", client_state={"global_step": global_step}
        )
        if is_main and args.save_total_limit > 0:
            tags = sorted(
                (p for p in ckpt_root.glob("step-*") if p.is_dir()), key=lambda p: int(p.name.split("-")[1])
            )
            for old in tags[: -args.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        if world > 1:
            dist.barrier()

    # Train.
    engine.train()
    window_loss = window_tokens = window_ctokens = 0.0
    window_steps = 0
    started = time.perf_counter()
    tick = started
    first_loss: float | None = None
    last_loss: float | None = None
    stopped_early = False
    for micro in range(global_step * gas, total_micro):
        batch = batches[_shard_index(micro, per_epoch=per_epoch, n=len(batches), rank=rank, world=world, seed=args.seed)]
        loss = engine(**inputs(batch)).loss
        engine.backward(loss)
        engine.step()
        window_loss += float(loss.detach())
        window_tokens += len(batch.input_ids)
        window_ctokens += sum(1 for x in batch.labels if x != -100)
        if (micro + 1) % gas:
            continue
        global_step += 1
        window_steps += 1
        if global_step % max(1, args.logging_steps) == 0 or global_step == total_steps:
            # Sums since the last metrics line: loss is the mean over its steps, throughput over its time.
            loss_sum, tokens, ctokens = reduce_sum(window_loss, window_tokens, window_ctokens)
            now = time.perf_counter()
            mean_loss = loss_sum / (gas * world * window_steps)
            first_loss = mean_loss if first_loss is None else first_loss
            last_loss = mean_loss
            log_metrics(
                {
                    "step": global_step, "epoch": round((micro + 1) / per_epoch, 4), "loss": mean_loss,
                    "lr": scheduler.get_last_lr()[0], "tokens": int(tokens), "completion_tokens": int(ctokens),
                    "tokens_per_s": tokens / max(now - tick, 1e-9), "elapsed_s": now - started,
                }
            )
            if is_main:
                log.info("step %d/%d loss %.4f lr %.3g", global_step, total_steps, mean_loss, scheduler.get_last_lr()[0])
            tick = now
            window_loss = window_tokens = window_ctokens = 0.0
            window_steps = 0
        if args.eval_steps > 0 and global_step % args.eval_steps == 0:
            eval_loss = evaluate()
            if eval_loss is not None:
                log_metrics({"step": global_step, "eval_loss": eval_loss})
        if args.save_steps > 0 and global_step % args.save_steps == 0 and global_step < total_steps:
            save_checkpoint()
        # Every rank must agree to stop at the same step, or the collectives hang.
        if args.max_train_seconds and reduce_sum(float(time.perf_counter() - started > args.max_train_seconds))[0]:
            stopped_early = global_step < total_steps
            if is_main and stopped_early:
                log.info("time budget of %.0f s spent: stopping at step %d/%d", args.max_train_seconds, global_step, total_steps)
            break

    eval_loss = evaluate()
    if eval_loss is not None:
        log_metrics({"step": global_step, "eval_loss": eval_loss})
    if args.save_steps > 0:
        save_checkpoint()
    final_dir = out / "final"
    if args.save_final:
        save_model(engine, tokenizer, final_dir, stage=stage, is_main=is_main, base_name=model_args.model_name_or_path)
        if world > 1:
            dist.barrier()
    if zero3_holder is not None:  # later loads (the merge below) must not be partitioned
        unset_hf_deepspeed_config()
    merged_dir = None
    if lora_args.use_lora and lora_args.merge_and_save and args.save_final:
        merged_dir = out / "merged"
        if is_main:
            merge_adapter(model_args.model_name_or_path, final_dir, merged_dir, dtype=dtype)
        if world > 1:
            dist.barrier()
    summary = {
        "steps": global_step, "total_steps": total_steps, "stopped_early": stopped_early, "examples": len(examples), "skipped": len(skipped),
        "sequences": len(batches), "first_loss": first_loss, "last_loss": last_loss, "eval_loss": eval_loss,
        "final": str(final_dir) if args.save_final else None, "merged": str(merged_dir) if merged_dir else None,
        "trainable_parameters": n_trainable, "elapsed_s": time.perf_counter() - started,
    }
    if is_main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def save_model(
    engine: Any, tokenizer: Any, out_dir: Path, *, stage: int, is_main: bool, base_name: str | None = None
) -> None:
    """Save the trained weights (or the LoRA adapter) as a folder ``from_pretrained`` loads.

    An adapter's ``adapter_config.json`` names its base as the user gave it (``base_name``): peft would
    write the folder the base was resolved to, e.g. a GGUF inside site-packages, which only exists on
    the training machine.
    """
    # Under ZeRO-3 the weights are partitioned: every rank takes part in gathering them.
    state = engine._zero3_consolidated_16bit_state_dict() if stage == 3 else None
    if not is_main:
        return
    module = engine.module
    if state is not None:
        module.save_pretrained(str(out_dir), state_dict=state)
    else:
        module.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    adapter_config = out_dir / "adapter_config.json"
    if base_name and adapter_config.is_file():
        given = Path(base_name).expanduser()
        config = json.loads(adapter_config.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = str(given.resolve()) if given.exists() else base_name
        adapter_config.write_text(json.dumps(config, indent=2), encoding="utf-8")
    log.info("saved %s", out_dir)


def merge_adapter(base: str, adapter_dir: str | Path, out_dir: str | Path, *, dtype: Any = None) -> Path:
    """Apply a LoRA adapter to its base, merge the weights, and save a plain model folder."""
    import torch
    from peft import PeftModel

    from .model_io import load_causal_lm, load_tokenizer

    model = load_causal_lm(base, dtype=dtype or torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir))
    load_tokenizer(base).save_pretrained(str(out_dir))
    log.info("merged %s into %s -> %s", adapter_dir, base, out_dir)
    return Path(out_dir)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s [rank{os.environ.get('RANK', '0')}] %(name)s: %(message)s"
    )
    model_args, data_args, sft_args, lora_args = parse_args(argv)
    summary = train(model_args, data_args, sft_args, lora_args)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0
