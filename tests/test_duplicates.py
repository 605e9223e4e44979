"""The same page under several URLs is extracted once: URL keys, content fingerprints, the pipeline."""

from __future__ import annotations

import re

import pytest
from fixtures.web.web_servers import ARTICLE_HTML, LocalServer, html_page, static

from zi_isag_tool import Pipeline
from zi_isag_tool.duplicates import NEAR_DUPLICATE, duplicates, fingerprint, similarity
from zi_isag_tool.settings import Settings
from zi_isag_tool.sources import normalize_url
from zi_isag_tool.types import Document

ARTICLE = (
    "Twice a day the sea pulls back from rocky shores and leaves small basins of water behind. "
    "These tide pools become isolated worlds in which temperature, salinity and oxygen change fast. "
    "Researchers measured pool temperatures rising by eleven degrees during a single summer low tide. "
    "Dissolved oxygen fell to less than a third of its morning value by the afternoon. "
    "Sea anemones retract their tentacles and cover themselves with shell fragments. "
    "Hermit crabs shuttle between pools, and some snails seal their shells with a mucus plug. "
    "Ochre sea stars tolerate body temperatures up to thirty-five degrees for short periods. "
    "Sculpin fish can gulp air at the surface when oxygen runs low in the pool. "
    "Warmer summers will push several species beyond these limits in the coming decades. "
    "That could reshape communities that biologists have documented for more than a century. "
    "The field station plans to repeat the measurements every summer for ten more years. "
    "Volunteers help count the animals in each pool at the lowest tide of every month. "
    "Their notes go into a public archive that any school can use for its own projects. "
    "The archive already holds counts from more than four hundred pools along the coast. "
    "Some pools have been counted every month since the station opened in the nineteen sixties. "
    "Those long series show which species moved north as the water warmed over the decades. "
    "They also show that a few species came back after the cold winters of the late seventies. "
    "The researchers want to know whether the same will happen after the next cold spell. "
    "Until then, the pools remain a small laboratory for the effects of a warming ocean. "
    "Visitors are asked to step only on bare rock and to put back any stone they turn over."
)
OTHER = (
    "A sourdough starter is a mix of flour and water in which wild yeasts and bacteria live. "
    "Feed it once a day at room temperature, or once a week when it sleeps in the fridge. "
    "A healthy starter doubles within six hours of a feeding and smells pleasantly sour. "
    "Discard most of it before each feeding so the flour is not overwhelmed by acid."
)


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.) ", text)


def test_fingerprint_ignores_case_punctuation_whitespace_and_markup() -> None:
    markdown = "# Tide pools\n\n" + ARTICLE.upper().replace(". ", ".\n\n- ").replace(",", " ,")
    assert similarity(fingerprint("Tide pools. " + ARTICLE), fingerprint(markdown)) == 1.0


def test_near_duplicates_are_found_and_different_texts_are_not() -> None:
    sentences = _sentences(ARTICLE)
    mirror = " ".join(s for i, s in enumerate(sentences) if i != 7) + " Share this article with your friends."
    assert similarity(fingerprint(ARTICLE), fingerprint(mirror)) >= NEAR_DUPLICATE
    half = " ".join(sentences[: len(sentences) // 2])
    assert similarity(fingerprint(ARTICLE), fingerprint(half)) < NEAR_DUPLICATE  # a part is not the page
    assert similarity(fingerprint(ARTICLE), fingerprint(OTHER)) == 0.0
    assert similarity(fingerprint(""), fingerprint("")) == 0.0
    assert duplicates([ARTICLE, OTHER, mirror, "", "", OTHER]) == [None, None, 0, None, None, 1]


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTPS://News.Example.COM:443/a/b?id=3&utm_source=x&utm_medium=y#comments", "https://news.example.com/a/b?id=3"),
        ("http://news.example.com:80?fbclid=abc&gclid=def", "http://news.example.com/"),
        ("https://news.example.com/a?amp", "https://news.example.com/a"),
        ("https://news.example.com/a?page=2&msclkid=1&_ga=2&mc_cid=3", "https://news.example.com/a?page=2"),
        ("https://news.example.com:8443/a?ref=home", "https://news.example.com:8443/a?ref=home"),
        ("http://[::1]:8080/x?UTM_CAMPAIGN=a", "http://[::1]:8080/x"),
        ("not a url", "not a url"),
    ],
)
def test_normalize_url(url: str, key: str) -> None:
    assert normalize_url(url) == key


def _settings() -> Settings:
    return Settings(_env_file=None, allow_private_networks=True, extractor="lead")  # passages from every page: the de-duplication is under test  # type: ignore[call-arg]


def test_the_same_page_under_several_urls_is_extracted_once() -> None:
    amp = ARTICLE_HTML.replace("<title>", "<title>AMP: ").replace("Share this article", "Share")
    other = html_page("Sourdough", f"<article><h1>Sourdough</h1><p>{OTHER}</p></article>")
    routes = {
        "/tide-pools": static(ARTICLE_HTML.encode(), "text/html; charset=utf-8"),
        "/amp/tide-pools": static(amp.encode(), "text/html; charset=utf-8"),
        "/sourdough": static(other.encode(), "text/html; charset=utf-8"),
    }
    with LocalServer(routes) as server:
        first = server.url("/tide-pools")
        tracked = server.url("/tide-pools?utm_source=newsletter&fbclid=abc#comments")
        urls = [first, tracked, server.url("/amp/tide-pools"), server.url("/sourdough")]
        result = Pipeline(_settings()).run("How warm do tide pools get at low tide?", urls)
        assert server.hits("/tide-pools?utm_source=newsletter&fbclid=abc") == 0  # never fetched
    statuses = {s.source: s for s in result.sources}
    assert [s.status for s in result.sources] == ["ok"] * 4
    for duplicate in urls[1:3]:
        assert statuses[duplicate].duplicate_of == first
        assert statuses[duplicate].error == f"duplicate of {first}: extracted once"
    assert statuses[urls[3]].duplicate_of is None and statuses[first].error is None
    assert [d.source for d in result.documents] == [first, urls[3]]
    assert result.passages and {p.source for p in result.passages} <= {first, urls[3]}
    texts = [p.text for p in result.passages]
    assert len(texts) == len(set(texts))
    assert {"source": urls[1], "status": "ok", "error": f"duplicate of {first}: extracted once"} in result.to_dict()[
        "sources"
    ]


def test_a_failed_page_fails_under_each_of_its_urls() -> None:
    with LocalServer({}) as server:
        urls = [server.url("/gone"), server.url("/gone?utm_campaign=spring")]
        result = Pipeline(_settings()).run("anything", urls)
        assert server.hits("/gone?utm_campaign=spring") == 0
    first, copy = result.sources
    assert (first.status, copy.status) == ("http_error", "http_error") and copy.duplicate_of == urls[0]
    assert copy.error == f"same page as {urls[0]}: {first.error}"
    assert not result.documents and not result.passages


def test_caller_documents_with_the_same_text_are_extracted_once() -> None:
    docs = [Document("a", ARTICLE, "A"), Document("b", "## Mirror\n\n" + ARTICLE, "B"), Document("c", OTHER, "C")]
    result = Pipeline(_settings()).extract_documents("How long does a sourdough starter take to double?", docs)
    assert [(s.source, s.duplicate_of) for s in result.sources] == [("a", None), ("b", "a"), ("c", None)]
    assert [d.source for d in result.documents] == ["a", "c"]
