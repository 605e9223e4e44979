"""The ZI-ISAG prompts, as data: tag-only and info+tag extraction, and the teacher's double checks.

The two extraction prompts are reproduced verbatim from ZI-ISAG's example instruction set
(``instruction_set_zi-isag_example_data_*.jsonl``; ZI-ISAG, Apache-2.0, see
``data/LICENSE-upstream-apache-2.0``). ``tests/test_prompts.py`` re-renders every upstream record
byte for byte. The double-check prompts are not in the upstream data: they are our own wording of
the role they play in ZI-ISAG's teacher route (confirm positives, confirm negatives).

Placeholders are ``{query}`` and ``{tagged_content}``; rendering fills them in one pass, so braces or
placeholder-like text inside a query or a page are never re-read as placeholders.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from .tagging import neutralize_tags
from .tokens import TokenCounter

__all__ = [
    "TAG_ONLY_TEMPLATE",
    "INFO_TAG_TEMPLATE",
    "POSITIVE_CHECK_TEMPLATE",
    "NEGATIVE_CHECK_TEMPLATE",
    "TAG_ONLY_ANSWER_PREFIX",
    "INFO_ANSWER_PREFIX",
    "CHECK_ANSWER_PREFIX",
    "render",
    "tag_only_messages",
    "info_tag_messages",
    "positive_check_messages",
    "negative_check_messages",
    "parse_check",
    "tag_only_prompt_overhead",
    "chatml",
]

log = logging.getLogger(__name__)

TAG_ONLY_ANSWER_PREFIX = "#Extracted Information Tag#:"
INFO_ANSWER_PREFIX = "#Extracted Information#:"
CHECK_ANSWER_PREFIX = "#Check#:"

# --- verbatim from ZI-ISAG (Apache-2.0) ---------------------------------------------------------
TAG_ONLY_TEMPLATE = """\
Your task is to filter and extract the relevant tags from the #Reference Materials#. The content of extracted tags will be included as reference content in a prompt given to a generative AI. This generative AI will use this prompt in a downstream task to generate a response to the #User Query#. Although your task does not include generating the response to the #User Query#, you must ensure the completeness, richness, and accuracy of the tags you extract to guarantee that the generative AI in the downstream task has rich, complete, and accurate relevant information when generating the response to the #User Query#.
The content of the #Reference Materials# provided is enclosed within the tags <Reference Materials> and </Reference Materials>, while the content of the #User Query# is enclosed within the tags <User Query> and </User Query>. The #Reference Materials# are divided into multiple segments, with each segment's content enclosed within its corresponding tags. For example, the content of the i-th segment is enclosed within the tags <T-i> and </T-i>.

#Reference Materials#:<Reference Materials>{tagged_content}</Reference Materials>

#User Query#:<User Query>{query}</User Query>

Please extract tags from the #Reference Materials# based on the #User Query# by following these steps:
1. Filter out content in the #Reference Materials# that is irrelevant or weakly related to the #User Query#.
2. Extract all tags from the #Reference Materials# that contain information needed to generate a response to the #User Query#, with a primary focus on highly relevant information

Return the result in the following format: '#Extracted Information Tag#:[[<T-i>, ...], [<T-j>, <T-k>~<T-k+m>], <T-n>...], ...]'. Output the tags of each piece of information that meets the extraction requirements (ensure the completeness of the information for each set of extracted tags).

Attention Points:
- If a group of output tags contains consecutive labels, connect the first and last tags in the group with a '~' symbol.
- If there are multiple pieces of effective information in the #Reference Materials# with similar key content, do not de-duplicate. Extract tags of all such information and merge them into one combined tag set. Ensure that the combined tag set still includes all the tags associated with the original information before merging.
- For multi-hop reasoning, extract and retain tags of all information needed in the reasoning process.
- If no relevant tags are extracted, output '#Extracted Information Tag#:None'."""

INFO_TAG_TEMPLATE = """\
Your task is to filter and extract the relevant information and corresponding tags from the #Reference Materials#. The extracted information will be included as reference content in a prompt given to a generative AI. This generative AI will use this prompt in a downstream task to generate a response to the #User Query#. Although your task does not include generating the response to the #User Query#, you must ensure the completeness, richness, and accuracy of the information you extract to guarantee that the generative AI in the downstream task has rich, complete, and accurate relevant information when generating the response to the #User Query#.
The content of the #Reference Materials# provided is enclosed within the tags <Reference Materials> and </Reference Materials>, while the content of the #User Query# is enclosed within the tags <User Query> and </User Query>. The #Reference Materials# are divided into multiple segments, with each segment's content enclosed within its corresponding tags. For example, the content of the i-th segment is enclosed within the tags <T-i> and </T-i>.

#Reference Materials#:<Reference Materials>{tagged_content}</Reference Materials>

#User Query#:<User Query>{query}</User Query>

Please extract information from the #Reference Materials# based on the #User Query# by following these steps:
1. Filter out content in the #Reference Materials# that is irrelevant or weakly related to the #User Query#.
2. Extract all relevant information and their corresponding tags from the #Reference Materials# needed to generate a response to the #User Query#, with a primary focus on highly relevant information

Return the result in the following format: '#Extracted Information#:1.___[<T-i>, ...]
2.___[<T-j>, <T-k>~<T-k+m>, <T-n>]
...'. Output the key content of each piece of information that meets the extraction requirements (keep the key content concise and ensure completeness of each extracted piece of information), and note the associated tags in brackets [].(A piece of information may contain multiple segments and therefore may be associated with multiple tags.)

Attention Points:
- If a group of output tags contains consecutive labels, connect the first and last tags in the group with a '~' symbol.
- If there are multiple pieces of effective information in the #Reference Materials# with similar key content, do not de-duplicate. Extract all such information and their tag sets and merge them into one combined piece of information and one combined tag set. Ensure that the combined tag set still includes all the tags associated with the original information before merging.
- For multi-hop reasoning, extract and retain all information and their tags needed in the reasoning process.
- If no relevant information is extracted, output '#Extracted Information#:None'.
- The language of the extracted information should be consistent with the original text in the #Reference Materials#."""

# --- end of the verbatim ZI-ISAG text -----------------------------------------------------------

# Our own wording (not in the upstream data): the teacher route re-asks the strong model about each
# example before keeping it, so that wrong positives and missed negatives do not reach training.
POSITIVE_CHECK_TEMPLATE = """\
You are checking an extraction made for the #User Query# from the #Reference Materials#. The #Reference Materials# are enclosed within the tags <Reference Materials> and </Reference Materials> and divided into segments: the content of the i-th segment is enclosed within the tags <T-i> and </T-i>. The #Extracted Information# lists pieces of information, each followed by the tags of the segments it was taken from.

#Reference Materials#:<Reference Materials>{tagged_content}</Reference Materials>

#User Query#:<User Query>{query}</User Query>

#Extracted Information#:<Extracted Information>{extracted}</Extracted Information>

Check the extraction:
1. Every piece of information must be stated in the segments whose tags it cites.
2. Every cited segment must be relevant to the #User Query#.
3. No segment needed to answer the #User Query# may be missing.

If all three hold, output '#Check#: Yes'. Otherwise output '#Check#: No'. Output nothing else."""

NEGATIVE_CHECK_TEMPLATE = """\
You are checking that the #Reference Materials# really contain nothing relevant to the #User Query#. The #Reference Materials# are enclosed within the tags <Reference Materials> and </Reference Materials> and divided into segments: the content of the i-th segment is enclosed within the tags <T-i> and </T-i>.

#Reference Materials#:<Reference Materials>{tagged_content}</Reference Materials>

#User Query#:<User Query>{query}</User Query>

Read every segment. If no segment contains information that helps to answer the #User Query#, output '#Check#: Yes'. If at least one segment does, output '#Check#: No'. Output nothing else."""

_PLACEHOLDER = re.compile(r"\{(query|tagged_content|extracted)\}")
# Structural markers of the prompts: text inside a query, a page or an answer must not close them.
_MARKER = re.compile(r"<(/?)(Reference Materials|User Query|Extracted Information)>", re.IGNORECASE)


def _defuse_markers(text: str) -> str:
    return _MARKER.sub(lambda m: f"\uff1c{m.group(1)}{m.group(2)}\uff1e", text)


def neutralize_query(query: str) -> str:
    """The query as the prompt shows it: tag look-alikes and prompt markers defused."""
    return _defuse_markers(neutralize_tags(query))


def render(template: str, *, query: str, tagged_content: str, extracted: str = "") -> str:
    """Fill a template in one pass; the query is neutralised, the tagged content is used as given
    (``TaggedWindow.tagged_text`` is already neutralised) apart from the prompt's own markers."""
    values = {
        "query": neutralize_query(query),
        "tagged_content": _defuse_markers(tagged_content),
        "extracted": _defuse_markers(extracted),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def tag_only_messages(query: str, tagged_text: str) -> list[dict[str, str]]:
    """Chat messages asking for tag ids only (the prompt every LLM extractor backend sends)."""
    return [{"role": "user", "content": render(TAG_ONLY_TEMPLATE, query=query, tagged_content=tagged_text)}]


def info_tag_messages(query: str, tagged_text: str) -> list[dict[str, str]]:
    """Chat messages asking for extracted information with its tags (the teacher's prompt)."""
    return [{"role": "user", "content": render(INFO_TAG_TEMPLATE, query=query, tagged_content=tagged_text)}]


def positive_check_messages(query: str, tagged_text: str, extracted: str) -> list[dict[str, str]]:
    """Ask the teacher to confirm an info+tag answer (``extracted``) before it becomes a positive."""
    content = render(POSITIVE_CHECK_TEMPLATE, query=query, tagged_content=tagged_text, extracted=extracted)
    return [{"role": "user", "content": content}]


def negative_check_messages(query: str, tagged_text: str) -> list[dict[str, str]]:
    """Ask the teacher to confirm that a window holds nothing relevant before it becomes a negative."""
    return [
        {"role": "user", "content": render(NEGATIVE_CHECK_TEMPLATE, query=query, tagged_content=tagged_text)}
    ]


_CHECK_RE = re.compile(r"#\s*Check\s*#\s*[:：]\s*(yes|no)\b", re.IGNORECASE)
_YES_NO_RE = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def parse_check(answer: str | None) -> bool | None:
    """``True`` for '#Check#: Yes', ``False`` for '#Check#: No', ``None`` when the answer says neither."""
    if not answer:
        return None
    answer = unicodedata.normalize("NFKC", answer)
    m = _CHECK_RE.search(answer) or _YES_NO_RE.match(answer)
    return None if m is None else m.group(1).lower() == "yes"


def tag_only_prompt_overhead(query: str, counter: TokenCounter) -> int:
    """Tokens of the tag-only prompt around the tagged content (instructions plus query).

    Window sizing subtracts this from the backend's context to know how much tagged text fits.
    """
    return counter.count(render(TAG_ONLY_TEMPLATE, query=query, tagged_content=""))


def chatml(role: str, content: str) -> str:
    """One ChatML turn as ZI-ISAG's instruction files store it: ``<|im_start|>role\\n...<|im_end|>\\n``."""
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"
