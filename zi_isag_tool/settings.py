"""One settings object: keyword arguments first, then ``ZI_ISAG_*`` environment variables, then defaults.

``TAVILY_API_KEY`` is read without the prefix, as Tavily documents it. Secrets are ``SecretStr`` and
never appear in ``repr``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SEARCH_BACKEND_NAMES = ("tavily", "searxng")
"""Search backends that ``search`` may name (several, comma-separated, are merged by rank fusion)."""

DEFAULT_TOOL_MAX_TOKENS = 4000
"""Default passage budget of the agent tools: far inside agents' limits on tool output (Claude Code
refuses MCP results over 25,000 tokens), and the MCP result carries the passages twice (text and
structured)."""

CommaList = Annotated[list[str], NoDecode]
"""A list read from the environment as ``a,b,c`` (or a JSON list), not only as JSON."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZI_ISAG_", extra="forbid", validate_default=True)

    # --- extraction -------------------------------------------------------------------------
    extractor: str = Field(
        "ranker",
        description=(
            "Extractor backend: ranker (default), embedding, bm25, hybrid, lead, full, smollm2-tags, "
            "transformers[:PATH], openai[:MODEL]."
        ),
    )
    window_tokens: int | None = Field(
        None, ge=64, le=131072, description="Content tokens per tagged window; None = the extractor's default."
    )
    max_tokens: int | None = Field(None, ge=1, description="Token budget for the passages returned.")
    max_passages: int | None = Field(None, ge=1, description="Maximum number of passages returned.")
    max_query_chars: int = Field(4000, ge=1, description="Longer queries are refused with a clear error.")
    max_segment_chars: int = Field(2000, ge=64, description="Longer sentences/blocks are cut at whitespace.")
    neighbours: bool = Field(
        True,
        description="Scorer backends: a kept sentence that opens with a back-reference ('He', 'It', 'This') "
        "brings the sentence before it, so the passage reads on its own.",
    )
    shortlist: int | None = Field(
        256,
        ge=1,
        description="Model-based scorer backends: candidates per call the model scores, chosen by BM25 "
        "(bounds the cost of a call on long pages); None scores every candidate.",
    )
    extract_chunk: int = Field(
        8, ge=1, le=1024, description="Windows per extractor call: the unit of progress and cancellation."
    )
    extract_budget: float | None = Field(
        120.0,
        gt=0,
        description=(
            "Seconds the extract stage of one call may take in all; windows not done by then fail "
            "('extraction budget spent') and the call returns what it has. None: no limit."
        ),
    )

    # transformers backend
    model_path: str | None = Field(
        None, description="Local model folder, GGUF file or LoRA adapter for the transformers backend."
    )
    device: str = Field("cpu", description="torch device for local models.")
    max_new_tokens: int = Field(64, ge=1, le=4096)
    batch_size: int = Field(4, ge=1, le=256)

    # openai-compatible backend
    openai_base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint.")
    openai_model: str | None = None
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("openai_api_key", "ZI_ISAG_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_timeout: float = Field(
        60.0, gt=0, description="Overall seconds per request attempt: connect, send, wait and read together."
    )
    openai_max_retries: int = Field(3, ge=0, le=10)
    openai_concurrency: int = Field(
        8,
        ge=1,
        le=256,
        description=(
            "Requests the openai extractor keeps in flight, all calls of the process together; a call's "
            "windows go out as slots free up, none later than its extraction budget allows."
        ),
    )
    openai_max_response_bytes: int = Field(
        1_000_000, ge=1024, description="Cap on the bytes of one answer read; a longer answer fails its window."
    )
    openai_max_retry_after: float = Field(
        30.0, ge=0, description="Longest server-asked Retry-After wait honoured, seconds."
    )
    api_proxy: str | None = Field(
        None,
        description=(
            "Proxy URL (http:// or https://) for the API clients (Tavily, OpenAI-compatible). They never "
            "read HTTP(S)_PROXY from the environment."
        ),
    )

    # --- agent tools (MCP web_extract, LangChain ZiIsagWebExtract) -----------------------------
    tool_max_tokens: int = Field(
        DEFAULT_TOOL_MAX_TOKENS,
        ge=1,
        le=100_000,
        description="Token budget of the passages an agent tool returns when the call gives no max_tokens.",
    )

    # --- search and fetch --------------------------------------------------------------------
    search: str = Field(
        "tavily",
        description=(
            "Search backend(s) used when no sources are given: tavily, searxng, or several comma-separated "
            "(queried together, results merged by reciprocal-rank fusion)."
        ),
    )
    tavily_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("tavily_api_key", "TAVILY_API_KEY", "ZI_ISAG_TAVILY_API_KEY")
    )
    tavily_base_url: str | None = Field(None, description="Override of Tavily's API base URL (tests, proxies).")
    max_results: int = Field(5, ge=1, le=20)
    search_depth: str = Field("basic")
    topic: str = Field("general")
    time_range: str | None = None
    include_domains: list[str] = Field(default_factory=list)
    exclude_domains: list[str] = Field(default_factory=list)
    rrf_k: int = Field(60, ge=1, le=10_000, description="k of reciprocal-rank fusion: 1/(k + rank) per backend.")

    # SearXNG (a self-hosted metasearch instance; its settings.yml must list json in search.formats)
    searxng_url: str | None = Field(None, description="Base URL of a SearXNG instance, e.g. http://127.0.0.1:8888.")
    searxng_language: str | None = Field(None, description="Search language (en, en-US, de, all...); None = the instance's.")
    searxng_categories: CommaList = Field(default_factory=list, description="SearXNG categories (general, news, science...).")
    searxng_engines: CommaList = Field(default_factory=list, description="SearXNG engines to use (e.g. duckduckgo,wikipedia).")
    searxng_safesearch: int | None = Field(None, ge=0, le=2, description="0 off, 1 moderate, 2 strict; None = the instance's.")
    searxng_timeout: float = Field(15.0, gt=0, description="Seconds to wait for the SearXNG instance's answer.")

    allow_private_networks: bool = Field(
        False, description="Let the fetcher reach loopback/private/link-local addresses (tests, intranets)."
    )
    fetch_timeout: float = Field(15.0, gt=0, description="Overall deadline per page, seconds.")
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(10.0, gt=0)
    max_page_bytes: int = Field(5_000_000, ge=1024, description="Cap on decoded bytes read per page.")
    max_redirects: int = Field(5, ge=0, le=20)
    max_concurrency: int = Field(32, ge=1, le=256)
    per_host_concurrency: int = Field(4, ge=1, le=64)
    respect_robots: bool = False
    user_agent: str = "zi-isag-tool/0.1 (+https://pypi.org/project/zi-isag-tool/)"
    fetch_proxy: str | None = Field(
        None,
        description=(
            "Proxy URL (http:// or https://) for fetching pages. The URL guard still checks every URL, "
            "but the proxy resolves names itself, so connections are no longer pinned to the checked "
            "addresses: restrict the proxy's own egress."
        ),
    )
    convert_workers: int | None = Field(
        None, ge=1, le=64, description="Conversion worker processes per fetcher; None: the available cores (at most 8)."
    )
    convert_memory_mb: int | None = Field(
        2048, ge=256, description="Address-space cap of each conversion worker, MB; None: no cap."
    )
    allow_local_files: bool = Field(True, description="Accept local file paths as sources (off in the MCP server).")
    local_roots: list[Path] = Field(
        default_factory=list, description="When non-empty, local sources must lie under one of these folders."
    )
    keep_links: bool = Field(
        False,
        description=(
            "Keep links as markdown [words](url) in the converted text. Off: a link keeps its words and its "
            "target goes to the page's links metadata (Document.links), not into the passages."
        ),
    )
    include_images: bool = Field(
        False,
        description="Keep images (their alt text, where it carries words) and captions in the converted text.",
    )
    cache_dir: Path | None = Field(None, description="On-disk page cache; None disables it.")
    cache_url: SecretStr | None = Field(
        None,
        description=(
            "Shared page cache on Redis (redis://[:PASSWORD@]HOST:6379/0, rediss://..., unix:///PATH): "
            "replicas pointing at one Redis fetch each page once. Takes the place of cache_dir. Secret: "
            "the URL may carry a password."
        ),
    )
    cache_ttl: float = Field(3600.0, ge=0, description="Seconds a cached page stays fresh.")
    cache_max_entry_bytes: int = Field(
        2_000_000, ge=1024, description="A page whose cache entry (JSON) would be larger is not cached."
    )
    cache_timeout: float = Field(
        2.0, gt=0, description="Seconds one Redis command may take; a slower or absent Redis is skipped."
    )

    # --- MCP server ----------------------------------------------------------------------------
    mcp_max_calls: int = Field(
        4, ge=1, le=256, description="web_extract calls an MCP server runs at once; more wait in line."
    )
    mcp_queue_timeout: float = Field(
        30.0, ge=0, description="Seconds a web_extract call waits for a free slot before a 'busy, retry' error."
    )
    mcp_stateless: bool = Field(
        False,
        description=(
            "Streamable HTTP without sessions: every request stands alone, so any replica behind a load "
            "balancer can answer it (no server-to-client requests, no cancellation of a running call)."
        ),
    )
    mcp_json_response: bool | None = Field(
        None,
        description=(
            "Answer each HTTP request with one JSON body instead of an SSE stream (progress notifications "
            "are then dropped). None: JSON when stateless, SSE otherwise."
        ),
    )

    @field_validator("fetch_proxy", "api_proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("a proxy must be an http:// or https:// URL, e.g. http://proxy.internal:3128")
        return value

    @field_validator("cache_url", mode="before")
    @classmethod
    def _redis_url(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None or not str(value).strip():
            return None
        value = str(value).strip()
        if not value.lower().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "cache_url must be a Redis URL such as redis://127.0.0.1:6379/0 (or rediss://, unix://); "
                "for a cache on disk set cache_dir instead"
            )
        return value

    @field_validator("extractor")
    @classmethod
    def _extractor_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("extractor must be a backend name such as 'embedding' or 'bm25'")
        return value

    @field_validator("search")
    @classmethod
    def _known_search_backends(cls, value: str) -> str:
        names = list(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))
        unknown = [n for n in names if n not in SEARCH_BACKEND_NAMES]
        if not names or unknown:
            raise ValueError(
                f"unknown search backend {', '.join(unknown) or repr(value)}; use {', '.join(SEARCH_BACKEND_NAMES)} "
                "or several of them comma-separated (e.g. tavily,searxng)"
            )
        return ",".join(names)

    @field_validator("searxng_categories", "searxng_engines", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("searxng_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError(f"searxng_url must be an http(s) URL such as http://127.0.0.1:8888, not {value!r}")
        return value

    def for_agent_tool(self, allow_dirs: Sequence[str | Path] = ()) -> Settings:
        """These settings as an agent tool (MCP server, LangChain tool) must run: a model's arguments
        reach local files only under ``allow_dirs`` or ``local_roots``, and none when neither names one."""
        roots = [*self.local_roots, *allow_dirs]
        return Settings.model_validate({**self.model_dump(), "local_roots": roots, "allow_local_files": bool(roots)})

    @property
    def search_names(self) -> list[str]:
        """The configured search backends, in order."""
        return self.search.split(",")
