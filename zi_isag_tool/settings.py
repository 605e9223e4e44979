"""One settings object: keyword arguments first, then ``ZI_ISAG_*`` environment variables, then defaults.

``TAVILY_API_KEY`` is read without the prefix, as Tavily documents it. Secrets are ``SecretStr`` and
never appear in ``repr``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZI_ISAG_", extra="forbid", validate_default=True)

    # --- extraction -------------------------------------------------------------------------
    extractor: str = Field(
        "embedding",
        description=(
            "Extractor backend: embedding, bm25, hybrid, lead, full, smollm2-tags, transformers[:PATH], "
            "openai[:MODEL]."
        ),
    )
    window_tokens: int | None = Field(
        None, ge=64, le=131072, description="Content tokens per tagged window; None = the extractor's default."
    )
    max_tokens: int | None = Field(None, ge=1, description="Token budget for the passages returned.")
    max_passages: int | None = Field(None, ge=1, description="Maximum number of passages returned.")
    max_query_chars: int = Field(4000, ge=1, description="Longer queries are refused with a clear error.")
    max_segment_chars: int = Field(2000, ge=64, description="Longer sentences/blocks are cut at whitespace.")
    extract_chunk: int = Field(
        8, ge=1, le=1024, description="Windows per extractor call: the unit of progress and cancellation."
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
    openai_timeout: float = Field(60.0, gt=0)
    openai_max_retries: int = Field(3, ge=0, le=10)
    openai_concurrency: int = Field(8, ge=1, le=256)

    # --- search and fetch --------------------------------------------------------------------
    search: str = Field("tavily", description="Search backend used when no sources are given.")
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
    cache_ttl: float = Field(3600.0, ge=0)

    @field_validator("extractor")
    @classmethod
    def _extractor_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("extractor must be a backend name such as 'embedding' or 'bm25'")
        return value
