"""Tokenise prompt/completion records with labels on the completion only, and pack without padding.

The record shapes accepted, and their tokenisation, are ``train.record``'s; every record is checked by
``train.construct.validate`` before it is trained on.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zi_isag_tool.datasets.jsonl import json_lines
from zi_isag_tool.errors import InputError

from .construct.validate import check_record
from .record import IGNORE_INDEX

log = logging.getLogger(__name__)


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
    examples: list[Example] = []
    problems: list[tuple[int, str]] = []
    for row in json_lines(path):
        line, record = row.number, row.value
        if isinstance(record, dict) and formats and record.get("format") and record["format"] not in formats:
            continue
        if row.problem is not None:
            problem: str | None = row.problem
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
