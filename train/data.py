"""Tokenise prompt/completion records with labels on the completion only, and pack without padding.

Accepted record shapes (one JSON object a line):

- conversational (what ``train construct`` writes, TRL's prompt-completion layout):
  ``{"prompt": [{"role": "user", "content": ...}], "completion": [{"role": "assistant", "content": ...}]}``
  rendered with the target model's own chat template, so one data set serves any chat model;
- pre-rendered strings (ZI-ISAG's released instruction files): ``{"prompt": "<|im_start|>user...",
  "chosen": "<|im_start|>assistant..."}`` (``completion`` is accepted for ``chosen``).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zi_isag_tool.errors import InputError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


class RecordError(InputError):
    """One record cannot be trained on; the message says why."""


@dataclass(frozen=True, slots=True)
class Example:
    """One tokenised record: ``labels`` is ``IGNORE_INDEX`` on every prompt token."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    line: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_completion_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


@dataclass(frozen=True, slots=True)
class Batch:
    """Model inputs for one micro-step; one row, no padding."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    position_ids: tuple[int, ...]
    n_examples: int


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line_number, parsed_or_exception)`` for every non-blank line (1-based numbers)."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, RecordError(f"not valid JSON ({exc.msg} at column {exc.colno})")


def _messages(value: Any, role: str, what: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RecordError(f"'{what}' must be a non-empty list of chat messages")
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise RecordError(f"every message in '{what}' needs string 'role' and 'content'")
    if value[-1]["role"] != role:
        raise RecordError(f"the last message of '{what}' must have role '{role}'")
    return value


def record_parts(record: Any) -> tuple[list[dict[str, str]] | str, list[dict[str, str]] | str]:
    """The prompt and completion of a record, checked for shape (``RecordError`` when missing/wrong)."""
    if not isinstance(record, dict):
        raise RecordError("record must be a JSON object")
    if "prompt" not in record:
        raise RecordError("missing field 'prompt'")
    completion = record.get("completion", record.get("chosen"))
    if completion is None:
        raise RecordError("missing field 'completion' (or 'chosen')")
    prompt = record["prompt"]
    if isinstance(prompt, str) and isinstance(completion, str):
        if not prompt.strip() or not completion.strip():
            raise RecordError("empty 'prompt' or 'completion'")
        return prompt, completion
    if isinstance(prompt, str) or isinstance(completion, str):
        raise RecordError("'prompt' and 'completion' must both be strings or both be message lists")
    return _messages(prompt, "user", "prompt"), _messages(completion, "assistant", "completion")


def completion_text(record: dict[str, Any]) -> str:
    completion = record.get("completion", record.get("chosen"))
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion)


def prompt_text(record: dict[str, Any]) -> str:
    prompt = record["prompt"]
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m["content"] for m in prompt)


def _as_ids(rendered: Any) -> list[int]:
    # apply_chat_template(tokenize=True) returns a list, or a BatchEncoding in some versions.
    if isinstance(rendered, dict) or hasattr(rendered, "input_ids"):
        rendered = rendered["input_ids"]
    return list(rendered)


def encode_record(record: Any, tokenizer: Any) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)``; labels are ``IGNORE_INDEX`` on the prompt. Raises ``RecordError``."""
    prompt, completion = record_parts(record)
    if isinstance(prompt, str):
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        full = list(p_ids) + list(c_ids)
        n_prompt = len(p_ids)
    else:
        try:
            p_ids = _as_ids(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True))
            full = _as_ids(tokenizer.apply_chat_template(prompt + completion, tokenize=True))
        except Exception as exc:  # jinja errors, missing template: the record is not usable with this model
            raise RecordError(f"chat template does not render: {type(exc).__name__}: {exc}") from exc
        # Labels are exact only if the prompt rendering is a prefix of the full rendering.
        if full[: len(p_ids)] != p_ids:
            raise RecordError("chat template renders the prompt differently with and without the completion")
        n_prompt = len(p_ids)
    if len(full) <= n_prompt:
        raise RecordError("completion renders to no tokens")
    labels = [IGNORE_INDEX] * n_prompt + full[n_prompt:]
    return full, labels


def load_examples(
    path: str | Path,
    tokenizer: Any,
    *,
    max_seq_length: int,
    formats: set[str] | None = None,
    on_bad_record: str = "skip",
    limit: int | None = None,
) -> tuple[list[Example], list[tuple[int, str]]]:
    """Tokenise and validate a JSONL file. Returns the examples and ``(line, problem)`` for each skip.

    Validation is the one of ``train.construct.validate`` (tags in the completion exist in the
    prompt, length fits, the template renders); ``on_bad_record='error'`` raises ``InputError`` at
    the first bad line instead of skipping it.
    """
    from .construct.validate import check_record

    examples: list[Example] = []
    problems: list[tuple[int, str]] = []
    for line, record in iter_jsonl(path):
        if isinstance(record, dict) and formats and record.get("format") and record["format"] not in formats:
            continue
        if isinstance(record, Exception):
            problem: str | None = str(record)
            encoded = None
        else:
            problem, encoded = check_record(record, tokenizer, max_seq_length=max_seq_length)
        if problem is not None or encoded is None:
            msg = f"{path}:{line}: {problem}"
            if on_bad_record == "error":
                raise InputError(f"bad training record, stopping (on_bad_record=error): {msg}")
            log.warning("skipping bad training record %s", msg)
            problems.append((line, problem or "unknown problem"))
            continue
        ids, labels = encoded
        examples.append(Example(tuple(ids), tuple(labels), line))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise InputError(f"no usable training records in {path} ({len(problems)} skipped)")
    return examples, problems


def single_batches(examples: Sequence[Example]) -> list[Batch]:
    return [
        Batch(e.input_ids, e.labels, tuple(range(len(e))), 1)
        for e in examples
    ]


def pack_examples(examples: Sequence[Example], max_seq_length: int, *, seed: int = 0) -> list[Batch]:
    """Padding-free packing: first-fit-decreasing bins of at most ``max_seq_length`` tokens.

    Position ids restart at 0 for every example. The trainer turns them into a block-diagonal
    causal mask (``sft.packed_attention_mask``), since sdpa and eager attention ignore restarting
    position ids; flash-attention reads them as boundaries itself. So examples never attend to
    each other, and as the first label of each example is the prompt's, no loss crosses a
    boundary either.
    """
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
    bins: list[list[int]] = []
    sizes: list[int] = []
    for i in order:
        n = len(examples[i])
        for b, size in enumerate(sizes):
            if size + n <= max_seq_length:
                bins[b].append(i)
                sizes[b] += n
                break
        else:
            bins.append([i])
            sizes.append(n)
    random.Random(seed).shuffle(bins)
    batches = []
    for members in bins:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for i in members:
            e = examples[i]
            ids.extend(e.input_ids)
            labels.extend(e.labels)
            pos.extend(range(len(e)))
        batches.append(Batch(tuple(ids), tuple(labels), tuple(pos), len(members)))
    return batches


def padding_share(lengths: Sequence[int], batch_size: int) -> float:
    """Share of token slots that would be padding if ``lengths`` were batched in order, padded to the longest."""
    total = 0
    pad = 0
    for start in range(0, len(lengths), batch_size):
        chunk = lengths[start : start + batch_size]
        total += max(chunk) * len(chunk)
        pad += max(chunk) * len(chunk) - sum(chunk)
    return pad / total if total else 0.0
