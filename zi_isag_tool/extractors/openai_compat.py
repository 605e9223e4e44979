"""The ``openai`` extractor: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

vLLM, SGLang, Ollama and OpenAI all serve this API, so this is how extraction scales past one
machine: serve a trained extractor with vLLM (tensor/pipeline parallel, many replicas) and point
the pipeline at it. Each window is one request with the ZI-ISAG tag-only prompt, greedy decoding and
a short ``max_tokens``; answers go through ``parse_tags``.

Setup::

    vllm serve ./my-extractor --served-model-name zi-isag    # or: ollama serve, sglang, OpenAI
    export ZI_ISAG_OPENAI_BASE_URL=http://127.0.0.1:8000/v1 ZI_ISAG_OPENAI_MODEL=zi-isag
    zi-isag extract "question" --source URL --extractor openai

Failures: 429, 5xx and timeouts are retried with exponential backoff and jitter (``Retry-After``
honoured); other 4xx are not. A window that still fails is ``WindowSelection(failed=True)``; when
every window fails because the endpoint is unreachable or refuses the key, ``ExtractorError``.
The API key is sent only in the ``Authorization`` header and never appears in reprs, logs or errors.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from ..errors import ConfigError, ExtractorError
from ..parser import parse_tags
from ..tokens import TokenCounter, default_counter
from ..types import TaggedWindow, WindowSelection
from .base import SyncExtractor

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

DEFAULT_WINDOW_TOKENS = 2048
# Generation ends at the close of the tag list: a chatty model stops there, and the parser reads an
# answer cut before its last "]]" just as well.
DEFAULT_STOP: tuple[str, ...] = ("]]",)
_MAX_ERROR_CHARS = 200


@dataclass(slots=True)
class _Outcome:
    """The end of one request attempt: JSON on success, else an error and whether to retry."""

    data: dict[str, Any] | None = None
    error: str | None = None
    retry: bool = False
    retry_after: float | None = None
    fatal: bool = False
    """The endpoint is unreachable or refuses us: later windows will fail the same way."""


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIExtractor(SyncExtractor):
    """Tag extraction through an OpenAI-compatible chat-completions endpoint.

    Key init args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: the served model name.
        api_key: bearer token, if the endpoint wants one (kept as ``SecretStr``).
        timeout: seconds per connect/read/write phase of a request.
        max_retries: retries after the first attempt (429, 5xx, timeouts only).
        concurrency: requests in flight at once (async and sync).
        max_new_tokens: ``max_tokens`` of each request; tag lists are short.
        window_tokens: the tagged-window size the pipeline should cut for this backend.
        token_counter: counts tokens when the response carries no ``usage``; ``None`` is o200k_base.

    Usage::

        ext = OpenAIExtractor("http://127.0.0.1:8000/v1", "zi-isag")
        selections = ext.extract("How is the Desmann lock?", windows)   # or: await ext.aextract(...)
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 8,
        max_new_tokens: int = 64,
        window_tokens: int = DEFAULT_WINDOW_TOKENS,
        token_counter: TokenCounter | None = None,
        *,
        stop: Sequence[str] | None = DEFAULT_STOP,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        max_retry_after: float = 60.0,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"openai base_url must be an http(s) URL such as http://127.0.0.1:8000/v1; got {base_url!r}"
            )
        if not model:
            raise ConfigError(
                "The openai extractor needs a model name (ZI_ISAG_OPENAI_MODEL or 'openai:MODEL')."
            )
        if timeout <= 0 or max_retries < 0 or concurrency < 1 or max_new_tokens < 1 or window_tokens < 1:
            raise ConfigError(
                "openai extractor: timeout, concurrency, max_new_tokens and window_tokens must be positive "
                "and max_retries >= 0."
            )
        root = base_url.rstrip("/")
        self.url = root if root.endswith("/chat/completions") else root + "/chat/completions"
        self.base_url = base_url
        self.model = model
        self._api_key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.max_new_tokens = int(max_new_tokens)
        self._window_tokens = int(window_tokens)
        self._token_counter = token_counter
        self.stop = list(stop) if stop else None
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._rng = random.Random()

    @classmethod
    def from_settings(cls, settings: Settings, model: str | None = None) -> OpenAIExtractor:
        model = model or settings.openai_model
        if not model:
            raise ConfigError(
                "The openai extractor needs a model name: use 'openai:MODEL' or set ZI_ISAG_OPENAI_MODEL."
            )
        return cls(
            base_url=settings.openai_base_url,
            model=model,
            api_key=settings.openai_api_key,
            timeout=settings.openai_timeout,
            max_retries=settings.openai_max_retries,
            concurrency=settings.openai_concurrency,
            max_new_tokens=settings.max_new_tokens,
            window_tokens=settings.window_tokens or DEFAULT_WINDOW_TOKENS,
        )

    def __repr__(self) -> str:
        key = "'**********'" if self._api_key is not None else "None"
        return f"OpenAIExtractor(base_url={self.base_url!r}, model={self.model!r}, api_key={key})"

    @property
    def token_counter(self) -> TokenCounter | None:
        return self._token_counter

    # --- request building and response reading (shared by sync and async) -------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "zi-isag-tool/0.1"}
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout)

    def _limits(self) -> httpx.Limits:
        return httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)

    def _body(self, query: str, window: TaggedWindow) -> dict[str, Any]:
        from ..prompts import tag_only_messages

        body: dict[str, Any] = {
            "model": self.model,
            "messages": tag_only_messages(query, window.tagged_text),
            "temperature": 0,
            "max_tokens": self.max_new_tokens,
            "n": 1,
            "stream": False,
        }
        if self.stop:
            body["stop"] = self.stop
        return body

    def _redact(self, text: str) -> str:
        text = " ".join(text.split())[:_MAX_ERROR_CHARS]
        if self._api_key is not None:
            secret = self._api_key.get_secret_value()
            if secret:
                text = text.replace(secret, "***")
        return text

    def _from_response(self, resp: httpx.Response) -> _Outcome:
        status = resp.status_code
        if status == 200:
            try:
                data = resp.json()
            except ValueError:
                return _Outcome(error="the endpoint returned invalid JSON")
            if not isinstance(data, dict):
                return _Outcome(error="the endpoint returned JSON that is not an object")
            return _Outcome(data=data)
        if status == 429 or status >= 500:
            return _Outcome(
                error=f"HTTP {status} from the endpoint",
                retry=True,
                retry_after=_retry_after_seconds(resp.headers.get("Retry-After")),
            )
        if status in (401, 403):
            # The body may echo the key (some servers do): say nothing from it.
            return _Outcome(
                error=f"HTTP {status}: the endpoint refused the API key; check ZI_ISAG_OPENAI_API_KEY",
                fatal=True,
            )
        if status == 404:
            return _Outcome(
                error=f"HTTP 404 at {self.url}: check ZI_ISAG_OPENAI_BASE_URL (it should end in /v1) and the model name",
                fatal=True,
            )
        return _Outcome(error=f"HTTP {status} from the endpoint: {self._error_detail(resp)}")

    def _error_detail(self, resp: httpx.Response) -> str:
        try:
            data = resp.json()
            err = data.get("error") if isinstance(data, dict) else None
            detail = err.get("message") if isinstance(err, dict) else (err or data.get("detail") or data)
        except ValueError:
            detail = resp.text
        return self._redact(str(detail))

    def _from_exception(self, exc: httpx.HTTPError) -> _Outcome:
        if isinstance(exc, httpx.TimeoutException):
            # A connect timeout is retried like a read timeout; if it persists the endpoint is down.
            return _Outcome(
                error=f"timed out after {self.timeout:g}s ({type(exc).__name__})",
                retry=True,
                fatal=isinstance(exc, httpx.ConnectTimeout),
            )
        if isinstance(exc, httpx.ConnectError):
            return _Outcome(error=f"cannot connect to {self.url}: is the server running?", fatal=True)
        return _Outcome(error=f"request failed: {type(exc).__name__}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.backoff_max, self.backoff_base * (2**attempt))
        delay = backoff / 2 + self._rng.uniform(0, backoff / 2)  # jitter spreads retries of many windows
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def _selection(
        self, outcome: _Outcome, body: dict[str, Any], window: TaggedWindow, attempts: int
    ) -> WindowSelection:
        prompt_text = "".join(m["content"] for m in body["messages"])
        if outcome.data is None:
            error = outcome.error or "request failed"
            if attempts > 1:
                error += f" (after {attempts} attempts)"
            return WindowSelection(tags=[], failed=True, error=error)
        answer, usage = self._read_choice(outcome.data)
        prompt_tokens, output_tokens = self._usage(usage, prompt_text, answer)
        if answer is None:
            return WindowSelection(
                tags=[],
                prompt_tokens=prompt_tokens,
                output_tokens=output_tokens,
                failed=True,
                error="the endpoint returned no message content",
            )
        parsed = parse_tags(answer, window.n_tags)
        return WindowSelection(
            tags=parsed.tags,
            raw_output=answer,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            dropped_out_of_range=parsed.dropped_out_of_range,
            failed=parsed.failed,
            error=f"unparseable answer: {parsed.error}" if parsed.failed else None,
        )

    @staticmethod
    def _read_choice(data: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None, usage
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else choices[0].get("text")
        return (content if isinstance(content, str) else None), usage

    def _usage(self, usage: dict[str, Any], prompt_text: str, answer: str | None) -> tuple[int, int]:
        prompt_tokens, output_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt_tokens, int) and isinstance(output_tokens, int):
            return prompt_tokens, output_tokens
        counter = self._token_counter or default_counter()
        return counter.count(prompt_text), counter.count(answer or "")

    def _finish(self, selections: list[WindowSelection], fatal_errors: list[str]) -> list[WindowSelection]:
        if selections and len(fatal_errors) == len(selections):
            raise ExtractorError(f"The openai extractor could not reach {self.url}: {fatal_errors[0]}")
        for i, sel in enumerate(selections):
            if sel.failed:
                log.warning("openai extractor: window %d failed: %s", i, sel.error)
        return selections

    # --- sync ----------------------------------------------------------------------------------------

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        if not windows:
            return []
        state = _CallState()
        with httpx.Client(headers=self._headers(), timeout=self._timeout(), limits=self._limits()) as client:

            def one(window: TaggedWindow) -> WindowSelection:
                return self._extract_one_sync(client, query, window, state)

            if self.concurrency == 1 or len(windows) == 1:
                selections = [one(w) for w in windows]
            else:
                with ThreadPoolExecutor(max_workers=min(self.concurrency, len(windows))) as pool:
                    selections = list(pool.map(one, windows))
        return self._finish(selections, state.fatal_errors)

    def _extract_one_sync(
        self, client: httpx.Client, query: str, window: TaggedWindow, state: _CallState
    ) -> WindowSelection:
        body = self._body(query, window)
        outcome, attempts = _Outcome(error="not attempted"), 0
        for attempt in range(self.max_retries + 1):
            if state.fatal is not None:  # the endpoint already failed for good: don't knock again
                outcome, attempts = _Outcome(error=state.fatal, fatal=True), 1
                break
            attempts = attempt + 1
            try:
                outcome = self._from_response(client.post(self.url, json=body))
            except httpx.HTTPError as exc:
                outcome = self._from_exception(exc)
            if not outcome.retry or attempt == self.max_retries:
                break
            delay = self._delay(attempt, outcome.retry_after)
            log.debug("openai extractor: %s; retry %d in %.2fs", outcome.error, attempt + 1, delay)
            time.sleep(delay)
        state.record(outcome)
        return self._selection(outcome, body, window, attempts)

    # --- async ---------------------------------------------------------------------------------------

    async def aextract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        if not windows:
            return []
        state = _CallState()
        sem = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(
            headers=self._headers(), timeout=self._timeout(), limits=self._limits()
        ) as client:

            async def one(window: TaggedWindow) -> WindowSelection:
                async with sem:
                    return await self._extract_one_async(client, query, window, state)

            selections = list(await asyncio.gather(*(one(w) for w in windows)))
        return self._finish(selections, state.fatal_errors)

    async def _extract_one_async(
        self, client: httpx.AsyncClient, query: str, window: TaggedWindow, state: _CallState
    ) -> WindowSelection:
        body = self._body(query, window)
        outcome, attempts = _Outcome(error="not attempted"), 0
        for attempt in range(self.max_retries + 1):
            if state.fatal is not None:
                outcome, attempts = _Outcome(error=state.fatal, fatal=True), 1
                break
            attempts = attempt + 1
            try:
                outcome = self._from_response(await client.post(self.url, json=body))
            except httpx.HTTPError as exc:
                outcome = self._from_exception(exc)
            if not outcome.retry or attempt == self.max_retries:
                break
            delay = self._delay(attempt, outcome.retry_after)
            log.debug("openai extractor: %s; retry %d in %.2fs", outcome.error, attempt + 1, delay)
            await asyncio.sleep(delay)
        state.record(outcome)
        return self._selection(outcome, body, window, attempts)


class _CallState:
    """Shared by the windows of one call: the first fatal error short-circuits the rest."""

    def __init__(self) -> None:
        self.fatal: str | None = None
        self.fatal_errors: list[str] = []
        self._lock = threading.Lock()

    def record(self, outcome: _Outcome) -> None:
        if outcome.data is None and outcome.fatal:
            with self._lock:
                self.fatal_errors.append(outcome.error or "request failed")
                if self.fatal is None:
                    self.fatal = outcome.error
