"""One training record: its accepted shapes, its text, and its tokens with labels on the completion.

Accepted record shapes (one JSON object a line):

- conversational (what ``train construct`` writes, TRL's prompt-completion layout):
  ``{"prompt": [{"role": "user", "content": ...}], "completion": [{"role": "assistant", "content": ...}]}``
  rendered with the target model's own chat template, so one data set serves any chat model;
- pre-rendered strings (ZI-ISAG's released instruction files): ``{"prompt": "<|im_start|>user...",
  "chosen": "<|im_start|>assistant..."}`` (``completion`` is accepted for ``chosen``).

Both the validator (``train.construct.validate``) and the data loader (``train.data``) build on this
module; it imports neither.
"""

from __future__ import annotations

from typing import Any

from zi_isag_tool.errors import InputError

__all__ = ["IGNORE_INDEX", "RecordError", "record_parts", "completion_text", "prompt_text", "encode_record"]

IGNORE_INDEX = -100


class RecordError(InputError):
    """One record cannot be trained on; the message says why."""


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
