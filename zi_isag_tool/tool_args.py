"""The agent tool ``web_extract``: its arguments and description, shared by the MCP server and the
LangChain tool (``ZiIsagWebExtract``), so a model sees the same bounds and words from either."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

TOOL_NAME = "web_extract"
MAX_QUERY_CHARS = 4000
MAX_URLS = 20
MAX_URL_CHARS = 2048
MAX_TOKENS_LIMIT = 100_000

QueryArg = Annotated[
    str,
    Field(
        description="The question the passages should answer, in natural language.",
        min_length=1,
        max_length=MAX_QUERY_CHARS,
    ),
]
UrlsArg = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS)]] | None,
    Field(
        description=f"http(s) URLs of pages to read instead of searching the web (at most {MAX_URLS}).",
        max_length=MAX_URLS,
    ),
]
MaxResultsArg = Annotated[
    int, Field(description="How many search results to read when no urls are given.", ge=1, le=20)
]
MaxTokensArg = Annotated[
    int | None,
    Field(
        description=(
            "Token budget for the passages returned; the best are kept first "
            "(default: the budget stated in the tool description)."
        ),
        ge=1,
        le=MAX_TOKENS_LIMIT,
    ),
]


class WebExtractArgs(BaseModel):
    """The arguments of ``web_extract`` as one model (the LangChain tool's ``args_schema``)."""

    query: QueryArg
    urls: UrlsArg = None
    max_results: MaxResultsArg = 5
    max_tokens: MaxTokensArg = None


def tool_description(default_max_tokens: int) -> str:
    """What the model reads about the tool, with the passage budget it gets when it names none."""
    return f"""Search the web (or read the given URLs) and return the exact passages that answer a question.

Passages are verbatim text from the pages, chosen by a tag-only extractor, with their source URL,
title, segment tags and character offsets; nothing is paraphrased. `sources` says which pages could
not be read and why; `tokens` counts the page text read and the passage text kept; `warnings` names
search problems that did not stop the call.
The passages returned are capped at {default_max_tokens} tokens unless `max_tokens` says otherwise;
`passages_left_out` counts selected passages the cap dropped or cut short (call again with a larger
`max_tokens` to get them).
Give `urls` to read specific pages instead of searching."""
