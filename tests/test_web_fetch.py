"""The fetcher against a real local page server: charsets, PDF, caps, deadlines, redirects, statuses."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.web.web_servers import (
    ARTICLE_HTML,
    CP1252_TEXT,
    GBK_TEXT,
    SJIS_TEXT,
    UTF8_TEXT,
    LocalServer,
    drip,
    gzip_bomb,
    gzip_text,
    html_page,
    lying_length,
    make_pdf,
    redirect,
    static,
    stream_without_length,
)

from zi_isag_tool.settings import Settings
from zi_isag_tool.web.fetch import FetchedPage, Fetcher
from zi_isag_tool.web.robots import RobotsPolicy
from zi_isag_tool.web.search import SearchHit

CAP = 200_000
DEADLINE = 1.5


def fetch_settings(**overrides: object) -> Settings:
    """Loopback allowed explicitly; short deadline so the drip page ends the test quickly."""
    values: dict[str, object] = {
        "allow_private_networks": True,
        "fetch_timeout": DEADLINE,
        "connect_timeout": 1.0,
        "read_timeout": 5.0,
        "max_page_bytes": CAP,
        "max_redirects": 3,
        "per_host_concurrency": 16,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


def _routes(port_ref: list[int]) -> dict[str, object]:
    def to_mapped(h: object) -> None:
        redirect(f"http://[::ffff:127.0.0.1]:{port_ref[0]}/utf8")(h)  # type: ignore[arg-type]

    return {
        "/utf8": static(html_page("UTF-8 page", UTF8_TEXT).encode(), "text/html; charset=utf-8"),
        "/cp1252": static(
            html_page("Latin page", CP1252_TEXT).encode("cp1252"), "text/html; charset=windows-1252"
        ),
        "/sjis": static(
            html_page("SJIS page", SJIS_TEXT).encode("shift_jis"), "text/html; charset=Shift_JIS"
        ),
        "/gbk": static(html_page("GBK page", GBK_TEXT).encode("gbk"), "text/html"),
        "/hex-label": static(html_page("Hex label", UTF8_TEXT).encode(), "text/html; charset=hex"),
        "/pdf": static(
            make_pdf(["Annual tide report.", "Pools warm by eleven degrees."], "Tide PDF"), "application/pdf"
        ),
        "/binary": static(os.urandom(4096), "application/octet-stream"),
        "/image": static(b"\x89PNG\r\n\x1a\n" + os.urandom(512), "image/png"),
        "/json": static(b'{"a": 1}', "application/json"),
        "/plain": static("Plain text body, ünïcödé.\n".encode(), "text/plain; charset=utf-8"),
        "/md": static(b"# Markdown title\n\nSome text.\n", "text/markdown"),
        "/untyped-html": static(html_page("Untyped", "Sniffed as HTML.").encode(), None),
        "/article": static(ARTICLE_HTML.encode(), "text/html; charset=utf-8"),
        "/gzip-page": static(
            gzip_text(html_page("Zipped", "Compressed but small.")),
            "text/html; charset=utf-8",
            Content_Encoding="gzip",
        ),
        "/bomb": static(gzip_bomb(64 << 20), "text/html", Content_Encoding="gzip"),
        "/big-stream": stream_without_length(2 << 20),
        "/big-declared": static(b"short", "text/plain", Content_Length=str(10**9), Connection="close"),
        "/lying-length": lying_length(declared=1000, actual=2 << 20),
        "/drip": drip(1.0),
        "/r3": redirect("/r2", 301),
        "/r2": redirect("r1", 307),
        "/r1": redirect("/utf8", 303),
        "/loop": redirect("/loop"),
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-file": redirect("file:///etc/passwd"),
        "/to-mapped": to_mapped,
        "/404": static(b"nope", "text/plain", 404),
        "/500": static(b"oops", "text/plain", 500),
        "/empty": static(b"<html><body></body></html>", "text/html"),
        "/counted": static(html_page("Counted", "Served once, then cached.").encode(), "text/html"),
        "/robots.txt": static(b"User-agent: *\nDisallow: /private/\n", "text/plain"),
        "/private/page": static(html_page("Private", "Robots say no.").encode(), "text/html"),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    port_ref: list[int] = [0]
    with LocalServer(_routes(port_ref)) as srv:  # type: ignore[arg-type]
        port_ref[0] = srv.port
        yield srv


async def _fetch(server: LocalServer, path: str, **overrides: object) -> FetchedPage:
    async with Fetcher(fetch_settings(**overrides)) as fetcher:
        return await fetcher.fetch(server.url(path))


@pytest.mark.parametrize(
    ("path", "expected", "title"),
    [
        ("/utf8", UTF8_TEXT, "UTF-8 page"),
        ("/cp1252", CP1252_TEXT, "Latin page"),
        ("/sjis", SJIS_TEXT, "SJIS page"),
        ("/gbk", GBK_TEXT, "GBK page"),
        ("/hex-label", UTF8_TEXT, "Hex label"),
    ],
    ids=["utf-8", "windows-1252", "shift_jis", "gbk-detected", "non-text-codec-label"],
)
async def test_html_in_several_charsets(server: LocalServer, path: str, expected: str, title: str) -> None:
    page = await _fetch(server, path)
    assert page.status == "ok", page
    assert page.error is None and page.title == title
    assert expected in (page.text or "")
    assert page.content_type == "text/html"


async def test_pdf_text_plain_markdown_and_sniffed_html(server: LocalServer) -> None:
    pdf = await _fetch(server, "/pdf")
    assert (pdf.status, pdf.content_type, pdf.title) == ("ok", "application/pdf", "Tide PDF")
    assert "Pools warm by eleven degrees." in (pdf.text or "")
    plain = await _fetch(server, "/plain")
    assert plain.status == "ok" and plain.text == "Plain text body, ünïcödé.\n"
    md = await _fetch(server, "/md")
    assert md.status == "ok" and md.title == "Markdown title" and md.content_type == "text/markdown"
    sniffed = await _fetch(server, "/untyped-html")
    assert (
        sniffed.status == "ok" and sniffed.title == "Untyped" and "Sniffed as HTML." in (sniffed.text or "")
    )
    zipped = await _fetch(server, "/gzip-page")
    assert zipped.status == "ok" and "Compressed but small." in (zipped.text or "")


async def test_article_boilerplate_removed_through_fetch(server: LocalServer) -> None:
    page = await _fetch(server, "/article")
    assert page.status == "ok"
    assert "Twice a day the sea pulls back" in (page.text or "")
    assert "Accept all cookies" not in (page.text or "") and "All rights reserved" not in (page.text or "")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/binary", "application/octet-stream"),
        ("/image", "image/png"),
        ("/json", "application/json"),
    ],
)
async def test_other_content_types_refused_with_reason(server: LocalServer, path: str, reason: str) -> None:
    page = await _fetch(server, path)
    assert page.status == "unsupported"
    assert reason in (page.error or "") and page.text is None


@pytest.mark.parametrize("path", ["/bomb", "/big-stream", "/big-declared"])
async def test_decoded_byte_cap(server: LocalServer, path: str) -> None:
    page = await _fetch(server, path)
    assert page.status == "too_large", page
    assert f"{CAP}-byte limit" in (page.error or "")


async def test_false_content_length_never_reads_past_it(server: LocalServer) -> None:
    page = await _fetch(server, "/lying-length")
    assert page.status == "ok"
    assert page.text == "a" * 1000


async def test_drip_page_hits_the_overall_deadline(server: LocalServer) -> None:
    page = await _fetch(server, "/drip")
    assert page.status == "timeout", page
    assert "deadline" in (page.error or "")


async def test_redirects_followed_and_rechecked(server: LocalServer) -> None:
    page = await _fetch(server, "/r3")
    assert page.status == "ok" and page.final_url == server.url("/utf8") and page.url == server.url("/r3")
    loop = await _fetch(server, "/loop")
    assert (loop.status, loop.error) == ("error", "too many redirects (more than 3)")
    for path, message in [
        ("/to-metadata", "cloud metadata address"),
        ("/to-file", "scheme 'file' is not allowed"),
        ("/to-mapped", "IPv4-mapped"),
    ]:
        blocked = await _fetch(server, path)
        assert blocked.status == "blocked", (path, blocked)
        assert message in (blocked.error or "")


async def test_http_errors_and_empty_pages(server: LocalServer) -> None:
    assert (await _fetch(server, "/404")).error == "HTTP 404 Not Found"
    five = await _fetch(server, "/500")
    assert (five.status, five.error) == ("http_error", "HTTP 500 Internal Server Error")
    empty = await _fetch(server, "/empty")
    assert (empty.status, empty.error) == ("error", "no readable text on the page")


async def test_connection_refused_and_unresolvable_host() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Fetcher(fetch_settings()) as fetcher:
        refused = await fetcher.fetch(f"http://127.0.0.1:{port}/")
    assert refused.status == "error" and (refused.error or "").startswith("connection failed")

    async def no_dns(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    async with Fetcher(fetch_settings(), resolver=no_dns) as fetcher:
        unknown = await fetcher.fetch("http://no-such-host.test/")
    assert (unknown.status, unknown.error) == ("error", "could not resolve host no-such-host.test")


async def test_fetch_many_partial_failure_and_progress(server: LocalServer) -> None:
    good = ["/utf8", "/cp1252", "/sjis", "/gbk", "/pdf", "/plain"]
    bad = {
        "/404": "http_error",
        "/image": "unsupported",
        "/bomb": "too_large",
        "/drip": "timeout",
    }
    urls = (
        [server.url(p) for p in good[:3]] + [server.url(p) for p in bad] + [server.url(p) for p in good[3:]]
    )
    progress: list[tuple[int, int]] = []

    async def on_done(done: int, total: int) -> None:
        progress.append((done, total))

    async with Fetcher(fetch_settings()) as fetcher:
        pages = await fetcher.fetch_many(urls, on_done=on_done)
    assert [p.url for p in pages] == urls
    ok = [p for p in pages if p.status == "ok"]
    assert [p.url for p in ok] == [server.url(p) for p in good]
    assert all(p.text for p in ok)
    failed = {p.url: p.status for p in pages if p.status != "ok"}
    assert failed == {server.url(p): s for p, s in bad.items()}
    assert all(p.error for p in pages if p.status != "ok")
    assert progress == [(i, 10) for i in range(1, 11)]


async def test_fetch_many_duplicates_fetched_once(server: LocalServer) -> None:
    before = server.hits("/md")
    urls = [server.url("/md")] * 3 + [server.url("/plain")]
    calls: list[tuple[int, int]] = []
    async with Fetcher(fetch_settings()) as fetcher:
        pages = await fetcher.fetch_many(urls, on_done=lambda d, t: calls.append((d, t)) and None)
    assert [p.status for p in pages] == ["ok"] * 4
    assert pages[0] == pages[1] and pages[0] is not pages[1]
    assert server.hits("/md") == before + 1
    assert calls[-1] == (4, 4)


async def test_cancelling_fetch_many_closes_every_connection() -> None:
    """A server that accepts and never answers; cancelling the caller must close all sockets."""
    opened: list[asyncio.StreamReader] = []
    closed = asyncio.Event()
    n = 5

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(reader)
        try:
            await reader.read()  # returns b"" when the client closes its socket
        finally:
            opened.remove(reader)
            if not opened:
                closed.set()
            writer.close()

    tcp = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    settings = fetch_settings(fetch_timeout=60.0, read_timeout=60.0)
    before = set(asyncio.all_tasks())
    async with Fetcher(settings) as fetcher:
        task = asyncio.create_task(fetcher.fetch_many([f"http://127.0.0.1:{port}/{i}" for i in range(n)]))
        for _ in range(200):
            if len(opened) == n:
                break
            await asyncio.sleep(0.02)
        assert len(opened) == n
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(closed.wait(), 5)
        leftover = [
            t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()
        ]
        assert all("handle" in repr(t) for t in leftover)  # only the server's own handlers, now finishing
    tcp.close()
    await tcp.wait_closed()


async def test_robots_txt_respected_when_asked(server: LocalServer) -> None:
    async with Fetcher(fetch_settings(respect_robots=True)) as fetcher:
        private, public = await fetcher.fetch_many([server.url("/private/page"), server.url("/utf8")])
    assert (private.status, private.error) == ("blocked", "disallowed by the site's robots.txt")
    assert public.status == "ok"
    assert (await _fetch(server, "/private/page")).status == "ok"  # off by default


async def test_disk_cache_avoids_refetching(server: LocalServer, tmp_path: Path) -> None:
    settings = fetch_settings(cache_dir=tmp_path / "cache", cache_ttl=3600)
    before = server.hits("/counted")
    async with Fetcher(settings) as fetcher:
        first = await fetcher.fetch(server.url("/counted"))
    async with Fetcher(settings) as fetcher:
        second = await fetcher.fetch(server.url("/counted"))
        failing = [await fetcher.fetch(server.url("/404")) for _ in range(2)]
    assert (first.from_cache, second.from_cache) == (False, True)
    assert (second.text, second.title, second.status) == (first.text, first.title, "ok")
    assert server.hits("/counted") == before + 1
    assert [p.from_cache for p in failing] == [False, False]  # failures are not cached
    # Pages fetched with private networks allowed are never served to a fetcher without that right.
    strict = Settings(_env_file=None, cache_dir=tmp_path / "cache")  # type: ignore[call-arg]
    async with Fetcher(strict) as fetcher:
        refused = await fetcher.fetch(server.url("/counted"))
    assert refused.status == "blocked" and server.hits("/counted") == before + 1
    expired = fetch_settings(cache_dir=tmp_path / "cache", cache_ttl=0)
    async with Fetcher(expired) as fetcher:
        third = await fetcher.fetch(server.url("/counted"))
    assert third.from_cache is False and server.hits("/counted") == before + 2


def test_page_from_search_hit_raw_content() -> None:
    hit = SearchHit(url="https://e.com/a", title="T", content="snippet", raw_content="# Full\n\nText.")
    page = FetchedPage.from_search_hit(hit)
    assert page is not None and (page.status, page.text, page.title) == ("ok", "# Full\n\nText.", "T")
    assert FetchedPage.from_search_hit(SearchHit(url="https://e.com/b", raw_content="  ")) is None


async def test_per_host_state_does_not_outlive_the_fetches(server: LocalServer) -> None:
    """A long-lived fetcher sees many host names: it keeps a slot only while one is in use."""
    hosts = [f"site{i}.test" for i in range(12)]

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    urls = [f"http://{host}:{server.port}/plain" for host in hosts]
    async with Fetcher(fetch_settings(respect_robots=True), resolver=resolve) as fetcher:
        pages = await fetcher.fetch_many(urls)
        assert [p.status for p in pages] == ["ok"] * len(hosts)
        assert len(fetcher._per_host) == 0
        assert fetcher._robots is not None and len(fetcher._robots) == len(hosts)


async def test_robots_rules_are_bounded_shared_and_expire() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    async def fetch(url: str) -> tuple[int, bytes]:
        calls.append(url)
        await release.wait()
        return 200, b"User-agent: *\nDisallow: /private/\n"

    policy = RobotsPolicy(fetch, "zi-isag-test", ttl=3600, max_origins=3)
    # Concurrent checks of one origin share one request.
    checks = [asyncio.create_task(policy.allowed(httpx.URL(f"https://a.test/{p}"))) for p in ("x", "private/y")]
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.gather(*checks) == [True, False]
    assert calls == ["https://a.test/robots.txt"]
    # At most max_origins kept, least recently used out first.
    for name in ("b", "c", "a", "d"):
        await policy.allowed(httpx.URL(f"https://{name}.test/"))
    assert len(policy) == 3
    await policy.allowed(httpx.URL("https://a.test/"))  # still kept: used recently
    await policy.allowed(httpx.URL("https://b.test/"))  # evicted: asked again
    assert calls.count("https://a.test/robots.txt") == 1 and calls.count("https://b.test/robots.txt") == 2
    # Expired rules are read again.
    expired = RobotsPolicy(fetch, "zi-isag-test", ttl=0)
    await expired.allowed(httpx.URL("https://e.test/"))
    await expired.allowed(httpx.URL("https://e.test/"))
    assert calls.count("https://e.test/robots.txt") == 2
