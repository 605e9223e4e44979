"""A teacher model behind any OpenAI-compatible ``/chat/completions`` endpoint.

Bounded concurrency, retries with backoff on transient failures (connection errors, timeouts, 408,
409, 429, 5xx; ``Retry-After`` honoured), and a resumable on-disk cache: each answer is appended to a
JSONL file and flushed to disk as soon as it arrives, so a run that is killed and started again only
asks for what is still missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from zi_isag_tool.errors import ConfigError, ZiIsagError

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class TeacherError(ZiIsagError):
    """The teacher endpoint refused a request for good (bad key, bad model, bad request)."""


def cache_key(model: str, messages: Sequence[dict[str, str]], params: dict[str, Any]) -> str:
    blob = json.dumps({"model": model, "messages": list(messages), "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    """Append-only JSONL of ``{"key", "answer"}``; a torn last line (killed mid-write) is ignored."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._answers: dict[str, str] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                        self._answers[str(row["key"])] = str(row["answer"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue
        self._fh = open(self.path, "a", encoding="utf-8")

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, key: str) -> bool:
        return key in self._answers

    def get(self, key: str) -> str | None:
        return self._answers.get(key)

    def put(self, key: str, answer: str) -> None:
        self._answers[key] = answer
        self._fh.write(json.dumps({"key": key, "answer": answer}, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())  # survive a kill right after this answer

    def close(self) -> None:
        self._fh.close()


@dataclass
class TeacherStats:
    requested: int = 0
    """HTTP requests sent (retries included)."""
    answered: int = 0
    cache_hits: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "answered": self.answered,
            "cache_hits": self.cache_hits,
            "failed": self.failed,
            "errors": self.errors[:20],
        }


class TeacherClient:
    """Ask many chat prompts, at most ``concurrency`` at a time, through the cache.

    Usage::

        client = TeacherClient("http://127.0.0.1:8000/v1", "qwen2.5-72b-instruct", cache_path="cache.jsonl")
        answers = client.ask_all([messages1, messages2])   # None where a request failed for good
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        cache_path: str | Path | None = None,
        concurrency: int = 8,
        max_retries: int = 3,
        timeout: float = 120.0,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        backoff: float = 1.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"teacher base URL must be http(s)://...; got {base_url!r}")
        if concurrency < 1 or max_retries < 0:
            raise ConfigError("concurrency must be >= 1 and max_retries >= 0")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.cache = AnswerCache(cache_path) if cache_path else None
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.params = {"temperature": temperature, "max_tokens": max_tokens}
        self.backoff = backoff
        self.stats = TeacherStats()

    def __repr__(self) -> str:  # never show the key
        return f"TeacherClient(url={self.url!r}, model={self.model!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def _post(self, client: httpx.AsyncClient, messages: Sequence[dict[str, str]]) -> str:
        body = {"model": self.model, "messages": list(messages), **self.params}
        last = ""
        for attempt in range(self.max_retries + 1):
            self.stats.requested += 1
            delay = self.backoff * (2**attempt) * (0.5 + random.random() / 2)
            try:
                resp = await client.post(self.url, json=body, headers=self._headers())
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    try:
                        return str(resp.json()["choices"][0]["message"]["content"] or "")
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        raise TeacherError(f"teacher answered 200 without choices[0].message.content: {exc}") from exc
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code not in _RETRY_STATUS:
                    raise TeacherError(last)
                retry_after = resp.headers.get("retry-after")
                if retry_after:
                    try:
                        delay = min(60.0, float(retry_after))
                    except ValueError:
                        pass
            if attempt < self.max_retries:
                log.info("teacher request failed (%s); retry %d/%d in %.1fs", last, attempt + 1, self.max_retries, delay)
                await asyncio.sleep(delay)
        raise TeacherError(f"teacher request failed after {self.max_retries + 1} tries: {last}")

    async def aask_all(self, prompts: Sequence[Sequence[dict[str, str]]]) -> list[str | None]:
        results: list[str | None] = [None] * len(prompts)
        todo: list[tuple[int, str]] = []
        for i, messages in enumerate(prompts):
            key = cache_key(self.model, messages, self.params)
            cached = self.cache.get(key) if self.cache else None
            if cached is not None:
                results[i] = cached
                self.stats.cache_hits += 1
            else:
                todo.append((i, key))
        if not todo:
            return results
        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:

            async def one(i: int, key: str) -> None:
                async with sem:
                    try:
                        answer = await self._post(client, prompts[i])
                    except TeacherError as exc:
                        self.stats.failed += 1
                        self.stats.errors.append(str(exc))
                        log.warning("teacher gave no answer for prompt %d: %s", i, exc)
                        return
                results[i] = answer
                self.stats.answered += 1
                if self.cache is not None:
                    self.cache.put(key, answer)

            await asyncio.gather(*(one(i, key) for i, key in todo))
        return results

    def ask_all(self, prompts: Sequence[Sequence[dict[str, str]]]) -> list[str | None]:
        return asyncio.run(self.aask_all(prompts))

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
