"""The ``openai`` extractor: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

vLLM, SGLang, Ollama and OpenAI all serve this API, so this is how extraction scales past one
machine: serve a trained extractor with vLLM (tensor/pipeline parallel, many replicas) and point
the pipeline at it. Each window is one request with the ZI-ISAG tag-only prompt, greedy decoding and
a short ``max_tokens``; answers go through ``parse_tags``.

Setup::

    vllm serve ./my-extractor --served-model-name zi-isag    # or: ollama serve, sglang, OpenAI
    export ZI_ISAG_OPENAI_BASE_URL=http://127.0.0.1:8000/v1 ZI_ISAG_OPENAI_MODEL=zi-isag
    zi-isag extract "question" --source URL --extractor openai

Concurrency: at most ``concurrency`` requests are in flight at once, for all the calls this extractor
serves on one event loop together (an MCP server's concurrent calls share them), so a server's load is
``replicas x concurrency`` however calls and windows arrive. Within that limit every window of a call
is sent as soon as a slot frees up: the pipeline hands this backend all its chunks at once
(``concurrent_chunks``), so a vLLM or SGLang server can batch them. A window waits for a slot no longer
than the call's extraction deadline allows; one that gets none fails unsent.

Bounds: every request attempt has an overall deadline (``timeout``: connect, send, wait and read
together, so an endpoint that drips one byte at a time cannot hold it longer); at most
``max_response_bytes`` of an answer are read; JSON parsing and local token counting run off the event
loop; and one call (all its windows, retries included) ends within ``call_budget`` seconds, or within
the pipeline's extraction deadline (``base.extraction_deadline``) when that comes first.

Failures: 429, 5xx and timeouts are retried with exponential backoff and jitter (``Retry-After``
honoured up to ``max_retry_after``); other 4xx are not. A window that still fails, answers ``""``
or answers something unparseable is ``WindowSelection(failed=True)``; when every window fails because
the endpoint is unreachable or refuses the key, ``ExtractorError``. ``usage`` numbers from the
endpoint are used only when plausible (non-negative, no more than what was sent and asked for);
otherwise tokens are counted locally. The API key is sent only in the ``Authorization`` header and
never appears in reprs, logs or errors. The client never reads proxies from the environment; ``proxy``
is the explicit way to use one.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import ssl
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from .._blocking import run_blocking
from ..errors import ConfigError, ExtractorError
from ..parser import parse_tags
from ..tokens import TokenCounter, default_counter
from ..types import TaggedWindow, WindowSelection
from .base import SyncExtractor, extraction_budget, extraction_deadline, extraction_deadline_left

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

DEFAULT_WINDOW_TOKENS = 2048
# Generation ends at the close of the tag list: a chatty model stops there, and the parser reads an
# answer cut before its last "]]" just as well.
DEFAULT_STOP: tuple[str, ...] = ("]]",)
_MAX_ERROR_CHARS = 200
_ERROR_BODY_BYTES = 16_384
"""An error answer is read up to this many bytes, for its message."""
_TEMPLATE_TOKENS = 256
"""Tokens a chat template may add to a prompt: a ``usage.prompt_tokens`` above bytes + this is not real."""


@dataclass(slots=True)
class _Outcome:
    """The end of one request attempt: the answer's bytes on success, else an error and whether to retry."""

    raw: bytes | None = None
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


def _plausible(value: Any, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


class OpenAIExtractor(SyncExtractor):
    """Tag extraction through an OpenAI-compatible chat-completions endpoint.

    Key init args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: the served model name.
        api_key: bearer token, if the endpoint wants one (kept as ``SecretStr``).
        timeout: overall seconds per request attempt (connect, send, wait and read together).
        max_retries: retries after the first attempt (429, 5xx, timeouts only).
        concurrency: requests in flight at once, all calls on one event loop together (each sync
            ``extract`` runs on its own loop).
        max_new_tokens: ``max_tokens`` of each request; tag lists are short.
        window_tokens: the tagged-window size the pipeline should cut for this backend.
        token_counter: counts tokens when the response carries no plausible ``usage``; ``None`` is
            o200k_base.
        max_response_bytes: an answer longer than this fails its window (a tag list needs a few KB).
        max_retry_after: the longest ``Retry-After`` honoured, seconds.
        call_budget: seconds one ``extract``/``aextract`` call may take in all (None: no limit); an
            enclosing ``extraction_deadline`` that ends sooner wins.
        proxy: an ``http(s)://`` proxy URL for the requests (never taken from the environment).

    Usage::

        ext = OpenAIExtractor("http://127.0.0.1:8000/v1", "zi-isag")
        selections = ext.extract("How is the Desmann lock?", windows)   # or: await ext.aextract(...)
    """

    name = "openai"
    concurrent_chunks = True
    """The pipeline may hand over every chunk of a call at once: this backend bounds its requests itself."""

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
        max_retry_after: float = 30.0,
        max_response_bytes: int = 1_000_000,
        call_budget: float | None = 120.0,
        proxy: str | None = None,
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
        if max_response_bytes < 1 or max_retry_after < 0 or (call_budget is not None and call_budget <= 0):
            raise ConfigError(
                "openai extractor: max_response_bytes and call_budget must be positive, max_retry_after >= 0."
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
        self.max_retry_after = float(max_retry_after)
        self.max_response_bytes = int(max_response_bytes)
        self.call_budget = None if call_budget is None else float(call_budget)
        self.proxy = proxy
        self._rng = random.Random()
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._ssl_context: ssl.SSLContext | None = None

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
            max_retry_after=settings.openai_max_retry_after,
            max_response_bytes=settings.openai_max_response_bytes,
            call_budget=settings.extract_budget,
            proxy=settings.api_proxy,
        )

    def __repr__(self) -> str:
        key = "'**********'" if self._api_key is not None else "None"
        return f"OpenAIExtractor(base_url={self.base_url!r}, model={self.model!r}, api_key={key})"

    @property
    def token_counter(self) -> TokenCounter | None:
        return self._token_counter

    # --- sync and async entry points -----------------------------------------------------------------

    def extract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        """Blocking ``aextract`` (on a private event loop; in a helper thread if this one runs a loop)."""
        if not windows:
            return []
        return run_blocking(self.aextract(query, windows), thread_name="zi-isag-openai")

    async def aextract(self, query: str, windows: Sequence[TaggedWindow]) -> list[WindowSelection]:
        if not windows:
            return []
        state = _CallState(self._loop_slots())
        with extraction_deadline(self.call_budget):
            async with httpx.AsyncClient(
                headers=self._headers(),
                verify=self._tls(),
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
                trust_env=False,
                proxy=self.proxy,
            ) as client:
                selections = list(await asyncio.gather(*(self._extract_one(client, query, w, state) for w in windows)))
        return self._finish(selections, state.fatal_errors)

    def _tls(self) -> ssl.SSLContext:
        """One TLS context for every client of this extractor: building one costs ~20 ms of CPU, and
        the pipeline opens a client per chunk."""
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context(trust_env=False)  # as the client: env ignored
        return self._ssl_context

    def _loop_slots(self) -> asyncio.Semaphore:
        """The request slots shared by every call on the running event loop."""
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.concurrency)
        return slots

    # --- one window ----------------------------------------------------------------------------------

    async def _extract_one(
        self, client: httpx.AsyncClient, query: str, window: TaggedWindow, state: _CallState
    ) -> WindowSelection:
        body = self._body(query, window)
        payload = json.dumps(body).encode("utf-8")
        outcome, attempts = _Outcome(error="not attempted"), 0
        for attempt in range(self.max_retries + 1):
            if state.fatal is not None:  # the endpoint already failed for good: don't knock again
                outcome, attempts = _Outcome(error=state.fatal, fatal=True), 1
                break
            left = extraction_deadline_left()
            if left is not None and left <= 0:
                outcome = self._budget_spent(outcome if attempts else None)
                break
            if not await _acquire_within(state.slots, left):
                outcome = self._budget_spent(outcome if attempts else None)
                break
            try:
                # Waiting for the slot took time: the endpoint or the budget may be gone meanwhile.
                left = extraction_deadline_left()
                if state.fatal is not None:
                    outcome, attempts = _Outcome(error=state.fatal, fatal=True), max(attempts, 1)
                    break
                if left is not None and left <= 0:
                    outcome = self._budget_spent(outcome if attempts else None)
                    break
                attempts = attempt + 1
                outcome = await self._attempt(client, payload, left)
            finally:
                state.slots.release()  # not held over a retry's backoff: others go first meanwhile
            if not outcome.retry or attempt == self.max_retries:
                break
            delay = self._delay(attempt, outcome.retry_after)
            left = extraction_deadline_left()
            if left is not None and delay >= left:
                outcome = self._budget_spent(outcome)
                break
            log.debug("openai extractor: %s; retry %d in %.2fs", outcome.error, attempt + 1, delay)
            await asyncio.sleep(delay)
        state.record(outcome)
        # Parsing the answer and counting tokens locally are CPU work: not on the event loop.
        return await asyncio.to_thread(self._selection, outcome, body, window, attempts)

    async def _attempt(self, client: httpx.AsyncClient, payload: bytes, budget_left: float | None) -> _Outcome:
        """One request under one overall deadline: the attempt's own, or what is left of the budget."""
        limit = self.timeout if budget_left is None else min(self.timeout, budget_left)
        by_budget = limit < self.timeout
        try:
            async with asyncio.timeout(limit) as scope:
                async with client.stream("POST", self.url, content=payload) as resp:
                    if resp.status_code != 200:
                        raw, _ = await _read_capped(resp, _ERROR_BODY_BYTES)
                        return self._from_status(resp, raw)
                    raw, over = await _read_capped(resp, self.max_response_bytes)
                    if over:
                        return _Outcome(
                            error=f"the answer is longer than the {self.max_response_bytes}-byte limit; not read"
                        )
                    return _Outcome(raw=raw)
        except TimeoutError:
            if not scope.expired():
                raise
            if by_budget:
                return _Outcome(error=f"{self._budget_message()} while waiting for the answer")
            return _Outcome(error=f"timed out: no complete answer within {self.timeout:g} s", retry=True)
        except httpx.HTTPError as exc:
            return self._from_exception(exc)

    @staticmethod
    def _budget_message() -> str:
        budget = extraction_budget()
        return "the extraction budget was spent" if budget is None else f"the extraction budget ({budget:g} s) was spent"

    def _budget_spent(self, last: _Outcome | None) -> _Outcome:
        message = self._budget_message()
        if last is not None and last.error:
            message += f" (last error: {last.error})"
        return _Outcome(error=message)

    # --- request building and response reading ------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        # identity: the byte cap then bounds what is read off the wire, not what a decoder inflates.
        headers = {"Content-Type": "application/json", "User-Agent": "zi-isag-tool/0.1", "Accept-Encoding": "identity"}
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

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

    def _from_status(self, resp: httpx.Response, raw: bytes) -> _Outcome:
        status = resp.status_code
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
        return _Outcome(error=f"HTTP {status} from the endpoint: {self._error_detail(raw)}")

    def _error_detail(self, raw: bytes) -> str:
        text = raw.decode("utf-8", errors="replace")
        try:
            data = json.loads(text)
            err = data.get("error") if isinstance(data, dict) else None
            detail = err.get("message") if isinstance(err, dict) else (err or data.get("detail") or data)
        except (ValueError, AttributeError):
            detail = text
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
        if outcome.raw is None:
            error = outcome.error or "request failed"
            if attempts > 1:
                error += f" (after {attempts} attempts)"
            return WindowSelection(tags=[], failed=True, error=error)
        try:
            data = json.loads(outcome.raw)
        except ValueError:
            return WindowSelection(tags=[], failed=True, error="the endpoint returned invalid JSON")
        if not isinstance(data, dict):
            return WindowSelection(tags=[], failed=True, error="the endpoint returned JSON that is not an object")
        answer, usage = self._read_choice(data)
        prompt_tokens, output_tokens = self._usage(usage, prompt_text, answer)
        if answer is None or not answer.strip():
            return WindowSelection(
                tags=[],
                raw_output=answer,
                prompt_tokens=prompt_tokens,
                output_tokens=output_tokens,
                failed=True,
                error="the endpoint returned no message content" if answer is None else "empty answer",
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
        """The endpoint's token counts when they are plausible for what was sent and asked for."""
        prompt_tokens, output_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        prompt_limit = len(prompt_text.encode("utf-8")) + _TEMPLATE_TOKENS
        if _plausible(prompt_tokens, prompt_limit) and _plausible(output_tokens, self.max_new_tokens):
            return int(prompt_tokens), int(output_tokens)  # type: ignore[arg-type]
        if usage:
            log.debug("openai extractor: implausible usage %r ignored; counting locally", usage)
        counter = self._token_counter or default_counter()
        return counter.count(prompt_text), counter.count(answer or "")

    def _finish(self, selections: list[WindowSelection], fatal_errors: list[str]) -> list[WindowSelection]:
        if selections and len(fatal_errors) == len(selections):
            raise ExtractorError(f"The openai extractor could not reach {self.url}: {fatal_errors[0]}")
        for i, sel in enumerate(selections):
            if sel.failed:
                log.debug("openai extractor: window %d failed: %s", i, sel.error)
        return selections


async def _read_capped(resp: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the (decoded) body, and whether there was more."""
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap and not resp.headers.get("content-encoding"):
        return b"", True
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.aiter_bytes():
        total += len(chunk)
        if total > cap:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


async def _acquire_within(slots: asyncio.Semaphore, seconds: float | None) -> bool:
    """Take a slot, waiting at most ``seconds`` (None: as long as it takes); False when none freed up."""
    try:
        async with asyncio.timeout(seconds) as scope:
            await slots.acquire()
    except TimeoutError:
        if not scope.expired():
            raise
        return False
    return True


class _CallState:
    """Shared by the windows of one call: the request slots, and the first fatal error, which
    short-circuits the rest."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self.slots = slots
        self.fatal: str | None = None
        self.fatal_errors: list[str] = []
        self._lock = threading.Lock()

    def record(self, outcome: _Outcome) -> None:
        if outcome.raw is None and outcome.fatal:
            with self._lock:
                self.fatal_errors.append(outcome.error or "request failed")
                if self.fatal is None:
                    self.fatal = outcome.error
