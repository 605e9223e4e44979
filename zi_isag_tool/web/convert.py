"""Bytes to text ready for tagging: charset decoding, HTML main content to markdown, PDF text.

``html_to_markdown`` keeps the main content (trafilatura drops navigation, footers, scripts, styles
and cookie banners) and renders it with markdownify. Whatever the HTML (malformed, thousands of
levels deep), it never raises: it falls back to the page's plain text.
"""

from __future__ import annotations

import codecs
import functools
import html as html_lib
import io
import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ..errors import InputError

logger = logging.getLogger(__name__)

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
TEXT_SUFFIXES = (".md", ".markdown", ".txt")
PDF_SUFFIXES = (".pdf",)

# WHATWG maps these labels to supersets; Python's strict codecs of the same name reject real pages.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "utf8": "utf-8",
}
# Text codecs of Python that no web page is written in (they would decode to garbage or raise).
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "utf-7"})
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:\-]+)""", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_OG_TITLE = re.compile(
    r"""<meta[^>]{0,256}?property\s*=\s*["']og:title["'][^>]{0,256}?content\s*=\s*["']([^"']*)""", re.I
)
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")
_TITLE_MAX = 300


def _codec(label: str | None) -> str | None:
    """Python codec name for a charset label, or None when unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    # A label may name a codec that is no charset (hex, base64, rot13, zlib, idna...): detect instead.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def header_charset(content_type_header: str | None) -> str | None:
    if not content_type_header:
        return None
    match = _HEADER_CHARSET.search(content_type_header)
    return _codec(match.group(1)) if match else None


def decode_body(data: bytes, content_type_header: str | None) -> str:
    """Decode a body: byte-order mark, then header charset, then ``<meta>``, then UTF-8, then detection."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data.decode(name, errors="replace")
    codec = header_charset(content_type_header)
    if codec is None:
        match = _META_CHARSET.search(data[:4096])
        if match:
            codec = _codec(match.group(1).decode("ascii", "replace"))
    if codec is not None:
        return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    detected = _detect(data)
    return data.decode(detected or "utf-8", errors="replace")


def _detect(data: bytes) -> str | None:
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    # Short Latin texts tie between windows-125x code pages; the web's usual legacy default wins ties.
    for match in matches:
        if match.chaos == best.chaos and match.coherence == best.coherence and match.encoding == "cp1252":
            return "cp1252"
    return _codec(best.encoding)


def html_title(html: str) -> str:
    """The page's ``<title>`` (or ``og:title``), unescaped and on one line; "" when there is none."""
    head = html[:200_000]
    for pattern in (_TITLE, _OG_TITLE):
        match = pattern.search(head)
        if match:
            title = " ".join(html_lib.unescape(re.sub(r"<[^>]*>", "", match.group(1))).split())
            if title:
                return title[:_TITLE_MAX]
    return ""


def markdown_title(text: str) -> str:
    match = _MD_HEADING.search(text[:20_000])
    return match.group(1).strip()[:_TITLE_MAX] if match else ""


def html_to_markdown(html: str, *, url: str | None = None) -> tuple[str, str]:
    """``(title, markdown)`` of the page's main content; plain text when extraction fails."""
    title = html_title(html)
    markdown = ""
    try:
        markdown = _main_content_markdown(html, url)
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError, LookupError) as exc:
        logger.debug("main-content extraction failed (%s); using plain text", type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - third-party parsers on hostile input: never crash
        logger.warning("main-content extraction failed (%s); using plain text", type(exc).__name__)
    if not markdown.strip():
        markdown = html_to_text(html)
    markdown = _tidy(markdown)
    return title or markdown_title(markdown), markdown


def _main_content_markdown(html: str, url: str | None) -> str:
    extracted = _main_content_html(html, url)
    if not extracted:
        return ""
    from bs4 import BeautifulSoup

    return _markdown_converter().convert_soup(BeautifulSoup(_inline_code_fix(extracted), "lxml"))


def _main_content_html(html: str, url: str | None) -> str | None:
    """trafilatura's main content as simple HTML (headings, paragraphs, lists, tables, links)."""
    import trafilatura

    options: dict[str, Any] = {
        "url": url,
        "include_comments": False,
        "include_tables": True,
        "include_links": True,
        "include_formatting": True,
        "include_images": False,
        "deduplicate": False,
    }
    try:
        from lxml import etree
        from trafilatura.htmlprocessing import convert_to_html
    except ImportError:  # layout of a future trafilatura: the public (slower) path
        return trafilatura.extract(html, output_format="html", **options)
    # What extract(output_format="html") does, minus a content fingerprint that costs more than the
    # extraction itself and a pretty-printing that only adds whitespace for markdownify to parse.
    document = trafilatura.bare_extraction(html, output_format="html", **options)
    if document is None or isinstance(document, dict) or document.body is None:
        return None
    return str(etree.tostring(convert_to_html(document.body), encoding="unicode"))


@functools.cache
def _markdown_converter() -> Any:
    from markdownify import MarkdownConverter

    return MarkdownConverter(
        heading_style="ATX",
        bullets="-",
        escape_underscores=False,
        escape_asterisks=False,
        escape_misc=False,
        strip=["img", "script", "style"],
    )


def _inline_code_fix(extracted_html: str) -> str:
    # trafilatura renders inline <code> as <pre>; inside a paragraph that breaks the sentence in two.
    return re.sub(
        r"<pre>([^<\n]{0,200})</pre>",
        lambda m: f"<code>{m.group(1)}</code>",
        extracted_html,
    )


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip() + ("\n" if text.strip() else "")


# --- plain-text fallback: an event parser, so depth and broken markup cannot hurt it -----------------

_SKIP_ALWAYS = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object"})
_SKIP_CHROME = frozenset({"nav", "footer", "header", "aside", "form", "menu"})
_BLOCKS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "main", "pre",
        "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "dl", "hr", "figure", "figcaption",
        "title", "body", "html", "td", "th",
    }
)  # fmt: skip


class _TextCollector(HTMLParser):
    def __init__(self, skip: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self._skip_tags = skip
        self._skipping: dict[str, int] = {}
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._skip_tags:
            self._skipping[tag] = self._skipping.get(tag, 0) + 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping.get(tag):
            self._skipping[tag] -= 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not any(self._skipping.values()):
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of ``html`` without scripts, styles and page chrome; never raises."""
    text = _collect(html, _SKIP_ALWAYS | _SKIP_CHROME)
    if not text.strip():
        # An unclosed <header> or <nav> may have swallowed the page: keep the chrome rather than nothing.
        text = _collect(html, _SKIP_ALWAYS)
    return text


def _collect(html: str, skip: frozenset[str]) -> str:
    parser = _TextCollector(skip)
    try:
        parser.feed(html)
        parser.close()
    except Exception as exc:  # noqa: BLE001 - keep what was read so far
        logger.debug("plain-text fallback stopped early: %s", type(exc).__name__)
    lines = ("".join(parser.parts)).split("\n")
    return "\n".join(" ".join(line.split()) for line in lines)


# --- PDF and local files ---------------------------------------------------------------------------


def pdf_to_text(data: bytes) -> tuple[str, str]:
    """``(title, text)`` of a PDF, pages separated by a blank line; ``InputError`` if unreadable."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError("the PDF is encrypted and needs a password")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = ""
        metadata = reader.metadata
        if metadata is not None and metadata.title:
            title = " ".join(str(metadata.title).split())[:_TITLE_MAX]
    except InputError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise InputError(f"could not read the PDF ({type(exc).__name__})") from exc
    text = "\n\n".join(p for p in pages if p)
    if not title:
        first = next((line.strip() for line in text.split("\n") if line.strip()), "")
        title = first[:_TITLE_MAX]
    return title, _tidy(text)


def convert_local_file(path: Path) -> tuple[str, str]:
    """``(title, text)`` of a local ``.html/.htm/.md/.markdown/.txt/.pdf`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in HTML_SUFFIXES + TEXT_SUFFIXES + PDF_SUFFIXES:
        raise InputError(
            f"unsupported file type {suffix or '(none)'!r} for {path.name}: "
            "use .html, .htm, .md, .markdown, .txt or .pdf"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path} is a directory, not a file") from exc
    except OSError as exc:
        raise InputError(f"could not read {path}: {exc.strerror or type(exc).__name__}") from exc
    if suffix in PDF_SUFFIXES:
        title, text = pdf_to_text(data)
    elif suffix in HTML_SUFFIXES:
        title, text = html_to_markdown(decode_body(data, None))
    else:
        text = _tidy(decode_body(data, None))
        title = markdown_title(text)
    return title or path.stem, text
