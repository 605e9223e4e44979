"""Conversion: main content without boilerplate, robust fallback, charsets, PDF, local files."""

from __future__ import annotations

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
from zi_isag_tool.web.convert import (
    convert_local_file,
    decode_body,
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
