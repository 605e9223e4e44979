"""Conversion: main content without boilerplate, robust fallback, charsets, PDF, local files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from fixtures.web.web_servers import (
    ARTICLE_HTML,
    CP1252_TEXT,
    GBK_TEXT,
    SJIS_TEXT,
    UTF8_TEXT,
    html_page,
    make_pdf,
)

from zi_isag_tool.errors import InputError
from zi_isag_tool.types import Link
from zi_isag_tool.web.convert import (
    MAX_LINKS,
    ConvertedPage,
    ConvertOptions,
    alt_words,
    convert_file,
    convert_html,
    convert_local_file,
    decode_body,
    html_title,
    html_to_markdown,
    html_to_text,
    pdf_to_text,
)

BOILERPLATE = [
    "Accept all cookies",
    "Latest News",
    "Subscribe to the print edition",
    "Sign in to your account",
    "Most read this week",
    "Ten beaches you must visit",
    "Sign up for our newsletter",
    "premium wetsuits",
    "Careers at Coastal Science Weekly",
    "All rights reserved",
    "Privacy policy",
    "SCRIPT_MARKER_SHOULD_NOT_APPEAR",
    "STYLE_MARKER_SHOULD_NOT_APPEAR",
    "tracking pixel",
    "dataLayer",
]


def test_article_keeps_main_content_and_drops_boilerplate() -> None:
    title, markdown = html_to_markdown(ARTICLE_HTML, url="https://coastal.example/tide-pools")
    assert title == "How Tide Pools Survive Low Tide | Coastal Science Weekly"
    for phrase in BOILERPLATE:
        assert phrase not in markdown, phrase
    assert "# How Tide Pools Survive Low Tide" in markdown
    assert "## Strategies of the residents" in markdown
    assert "Twice a day the sea pulls back from rocky shores" in markdown
    assert "dissolved oxygen fell to less than a third of its morning value." in markdown
    assert "- Sculpin fish can gulp air at the surface when oxygen runs low." in markdown
    assert "| Ochre sea star | 35 C |" in markdown
    assert "<" not in markdown  # rendered as markdown, not HTML


def test_deeply_nested_html_falls_back_to_text() -> None:
    depth = 5000
    html = "<html><head><title>Deep</title></head><body>" + "<div>" * depth
    html += "<p>Text at the bottom of the well.</p>" + "</div>" * depth + "</body></html>"
    title, text = html_to_markdown(html)
    assert title == "Deep"
    assert "Text at the bottom of the well." in text


def test_very_deep_unclosed_and_broken_html_never_raises() -> None:
    for html in [
        "<span><b>" * 20000 + "still readable",
        "<html><body><p>unclosed <b><i>tags <table><tr><td>cell</div></span> &bogus; <<<>>> text",
        "<<<<>>>>",
        "",
        "\x00\x01<p>\ufffd binary-ish</p>",
        "<nav>" + "menu " * 10 + "<p>an unclosed nav swallows the page",
    ]:
        title, text = html_to_markdown(html)
        assert isinstance(title, str) and isinstance(text, str)
    assert "still readable" in html_to_markdown("<span><b>" * 20000 + "still readable")[1]
    assert "swallows the page" in html_to_markdown("<nav>menu <p>an unclosed nav swallows the page")[1]


def test_plain_text_fallback_skips_scripts_and_chrome() -> None:
    text = html_to_text(
        "<header>Brand</header><script>var x = 1;</script><style>p{}</style>"
        "<p>Body one.</p><div>Body two.</div><footer>Legal</footer>"
    )
    assert text.split() == ["Body", "one.", "Body", "two."]


@pytest.mark.parametrize(
    ("text", "encoding", "header"),
    [
        (UTF8_TEXT, "utf-8", "text/html; charset=utf-8"),
        (CP1252_TEXT, "windows-1252", "text/html; charset=windows-1252"),
        (CP1252_TEXT, "windows-1252", "text/html; charset=ISO-8859-1"),  # WHATWG: latin-1 means cp1252
        (SJIS_TEXT, "shift_jis", "text/html; charset=Shift_JIS"),
        (SJIS_TEXT, "shift_jis", "text/html"),  # from <meta charset>
        (GBK_TEXT, "gbk", "text/html"),  # no header charset, no meta: detection
        (UTF8_TEXT, "utf-8", None),
    ],
    ids=[
        "utf-8",
        "windows-1252",
        "latin-1-label",
        "shift_jis",
        "shift_jis-meta",
        "gbk-detected",
        "utf-8-no-header",
    ],
)
def test_decode_body_charsets(text: str, encoding: str, header: str | None) -> None:
    meta = f'<meta charset="{encoding}">' if header == "text/html" and encoding == "shift_jis" else ""
    data = html_page("t", text, meta).encode(encoding)
    assert text in decode_body(data, header)


def test_decode_body_bom_wins_over_header() -> None:
    data = "\ufeffBOM says UTF-16: ünïcödé".encode("utf-16-le")
    data = b"\xff\xfe" + data[2:]
    assert "ünïcödé" in decode_body(data, "text/plain; charset=iso-8859-1")


def test_pdf_to_text() -> None:
    pdf = make_pdf(["Quarterly report on tide pools.", "Oxygen fell by two thirds."], title="Tide Report")
    title, text = pdf_to_text(pdf)
    assert title == "Tide Report"
    assert "Quarterly report on tide pools." in text
    assert "Oxygen fell by two thirds." in text


def test_pdf_without_title_uses_first_line_and_broken_pdf_is_input_error() -> None:
    title, _ = pdf_to_text(make_pdf(["First line as title", "second"]))
    assert title == "First line as title"
    with pytest.raises(InputError, match="PDF"):
        pdf_to_text(b"%PDF-1.4 this is not really a pdf")


def test_convert_local_files(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_bytes(ARTICLE_HTML.encode())
    (tmp_path / "notes.md").write_text("# Notes title\n\nSome *markdown* text.\n", encoding="utf-8")
    (tmp_path / "plain.txt").write_bytes(CP1252_TEXT.encode("cp1252"))
    (tmp_path / "doc.pdf").write_bytes(make_pdf(["PDF body text here."]))
    title, text = convert_local_file(tmp_path / "page.html")
    assert title.startswith("How Tide Pools") and "Latest News" not in text
    assert convert_local_file(tmp_path / "notes.md") == (
        "Notes title",
        "# Notes title\n\nSome *markdown* text.\n",
    )
    title, text = convert_local_file(tmp_path / "plain.txt")
    assert title == "plain" and CP1252_TEXT in text
    assert "PDF body text here." in convert_local_file(tmp_path / "doc.pdf")[1]


def test_convert_local_file_refusals(tmp_path: Path) -> None:
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match=r"unsupported file type '\.xlsx'"):
        convert_local_file(tmp_path / "sheet.xlsx")
    with pytest.raises(InputError, match="file not found"):
        convert_local_file(tmp_path / "missing.md")


@pytest.mark.parametrize("label", ["hex", "base64", "rot13", "rot-13", "uu", "zlib", "bz2", "idna", "punycode", "utf-7"])
def test_charset_labels_naming_no_text_codec_fall_back_to_detection(label: str) -> None:
    data = html_page("t", UTF8_TEXT).encode("utf-8")
    assert UTF8_TEXT in decode_body(data, f"text/html; charset={label}")
    meta = html_page("t", CP1252_TEXT, f'<meta charset="{label}">').encode("cp1252")
    assert CP1252_TEXT in decode_body(meta, "text/html")


LINKED = html_page(
    "Dividend investing",
    "<article><h1>Dividend investing</h1>"
    "<p>Read <a href='https://news.example/rates' title='Rates explained'>the rate outlook</a> before buying, "
    "and see <a href='guide/yield.html'>our yield guide</a> or <a href='/glossary#payout'>the payout ratio</a>. "
    "Back to <a href='#top'>the top</a>, or <a href='mailto:desk@example.org'>write to the desk</a>.</p>"
    "<p>Dividend stocks pay part of their profits to shareholders every quarter, which makes them popular "
    "with investors who live on the income their portfolio produces rather than on its growth.</p>"
    "<p>Citations: <a href='https://doi.example/10.1/abc'>[1]</a> and "
    "<a href='https://news.example/rates'>the rate outlook</a> again.</p></article>",
)
PAGE_URL = "https://invest.example/articles/dividends.html"


def test_links_keep_their_words_and_their_targets_go_to_metadata() -> None:
    page = convert_html(LINKED, url=PAGE_URL)
    assert "Read the rate outlook before buying, and see our yield guide or the payout ratio." in page.text
    for target in ("http", "](", "news.example", "Rates explained", "mailto", "yield.html"):
        assert target not in page.text, target
    assert page.links == (
        Link("https://news.example/rates", "the rate outlook"),
        Link("https://invest.example/articles/guide/yield.html", "our yield guide"),
        Link("https://invest.example/glossary#payout", "the payout ratio"),
        Link("https://doi.example/10.1/abc", "[1]"),
    )  # in reading order; in-page anchors, mail links and exact repeats left out


def test_keep_links_setting_renders_absolute_markdown_links() -> None:
    page = convert_html(LINKED, url=PAGE_URL, options=ConvertOptions(keep_links=True))
    assert "[our yield guide](https://invest.example/articles/guide/yield.html)" in page.text
    assert "[the rate outlook](https://news.example/rates" in page.text
    assert page.links == convert_html(LINKED, url=PAGE_URL).links


def test_links_without_a_page_url_keep_only_absolute_targets() -> None:
    assert [link.url for link in convert_html(LINKED).links] == [
        "https://news.example/rates",
        "https://doi.example/10.1/abc",
    ]


def test_links_per_page_are_capped() -> None:
    items = "".join(f"<li><a href='https://tags.example/t{i}'>tag number {i}</a> is a topic here</li>" for i in range(1500))
    page = convert_html(html_page("Tags", f"<article><h1>Tags</h1><p>All the tags of the site.</p><ul>{items}</ul></article>"))
    assert len(page.links) <= MAX_LINKS and page.links[0] == Link("https://tags.example/t0", "tag number 0")


@pytest.mark.parametrize(
    ("alt", "kept"),
    [
        ("Chart of ten-year bond yields since 2010", True),
        ("Sunset", True),
        ("", False),
        ("image", False),
        ("Photo 3", False),
        ("IMG_2041.JPG", False),
        ("DSC01234", False),
        ("https://cdn.example/a.png", False),
        ("logo", False),
    ],
)
def test_alt_text_is_kept_only_where_it_carries_words(alt: str, kept: bool) -> None:
    assert alt_words(alt) == (alt if kept else "")


def test_images_become_their_alt_text_when_included() -> None:
    html = html_page(
        "Yields",
        "<article><h1>Yields</h1><p>Bond yields rose through the year, and long rates followed short rates "
        "up while inflation stayed high for most of the period that the article covers.</p>"
        "<p>The chart: <img src='c.png' alt='Ten-year yields climbed from 1.5 to 4.2 percent'> and "
        "<img src='x.png' alt='image'><img src='y.png'> end of the figure paragraph here.</p></article>",
    )
    included = convert_html(html, options=ConvertOptions(include_images=True)).text
    assert "Ten-year yields climbed from 1.5 to 4.2 percent" in included
    assert "image" not in included.replace("Yields", "") and "![" not in included and ".png" not in included
    assert "Ten-year yields climbed" not in convert_html(html).text  # images are left out by default


@pytest.mark.parametrize("keep_links", [False, True])
def test_unicode_spaces_around_inline_markup_survive(keep_links: bool) -> None:
    html = html_page(
        "Stocks",
        "<article><p><b>High dividend stocks&nbsp;</b>are popular, <em>very&#8239;</em>popular, and "
        "<a href='https://x.example/'>income&#x2009;</a>investors&#x3000;<i>like</i>&#x2002;them. They pay "
        "out a steady share of their profits every quarter, which retirees in particular appreciate.</p></article>",
    )
    text = convert_html(html, options=ConvertOptions(keep_links=keep_links)).text
    assert "**High dividend stocks** are popular, *very* popular" in text
    assert "investors *like* them" in text
    assert "income investors" in text or "[income](https://x.example/) investors" in text


def test_title_is_found_past_a_huge_head_and_just_past_the_body_start() -> None:
    head = (
        "<script>var t = '<title>not the title</title>'; " + "x = 1; " * 80_000 + "</script>"
        "<style>" + "a{color:red}" * 40_000 + "</style><!-- <title>commented out</title> -->"
        "<svg><title>an icon</title></svg><meta property='og:title' content='The OG title'>"
    )
    assert len(head) > 487_000
    page = f"<html><head>{head}<title>Real &amp; final title</title></head><body><p>Text.</p></body></html>"
    assert html_title(page) == "Real & final title"
    assert convert_html(page).title == "Real & final title"
    assert html_title(f"<html><head>{head}</head><body><p>Text.</p></body></html>") == "The OG title"
    # Some real pages put <title> just inside <body>; a title deep in the body is not looked for.
    assert html_title("<html><head></head><body><title>In the body</title><p>x</p>") == "In the body"
    assert html_title("<html><body>" + "<p>text</p>" * 20_000 + "<title>far away</title>") == ""


def test_converted_pages_survive_pickling() -> None:
    page = convert_html(LINKED, url=PAGE_URL)
    assert isinstance(page, ConvertedPage) and page.links
    assert pickle.loads(pickle.dumps(page)) == page
    assert pickle.loads(pickle.dumps(ConvertOptions(keep_links=True))) == ConvertOptions(keep_links=True)


def test_local_html_file_keeps_its_links(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(LINKED, encoding="utf-8")
    page = convert_file(tmp_path / "page.html")
    assert page.title == "Dividend investing" and "the rate outlook" in page.text and "http" not in page.text
    assert [link.url for link in page.links] == ["https://news.example/rates", "https://doi.example/10.1/abc"]
