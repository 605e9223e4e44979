"""Bytes to text ready for tagging: charset decoding, HTML main content to markdown, PDF text.

``convert_html`` keeps the main content (trafilatura drops navigation, footers, scripts, styles
and cookie banners) and renders it with markdownify. A link keeps its words in the text; its target
goes to the page's ``links`` (unless ``ConvertOptions.keep_links`` asks for markdown links). Unicode
spaces become plain spaces, so words around inline markup stay apart. Whatever the HTML (malformed,
thousands of levels deep), it never raises: it falls back to the page's plain text.

What crosses a process boundary (``ConvertOptions``, ``ConvertedPage``, ``Link``) is plain frozen
dataclasses, so conversion can run in worker processes.
"""

from __future__ import annotations

import codecs
import functools
import html as html_lib
import io
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag, urljoin, urlsplit

from ..errors import InputError
from ..types import Link

if TYPE_CHECKING:
    from ..settings import Settings

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
# Where the head can hold a title: the next tag that opens raw text, a title, a meta tag or the body.
_HEAD_TAG = re.compile(
    r"<(?:(?P<raw>script|style|textarea|noscript|svg)\b|(?P<title>title)\b|(?P<meta>meta)\b|(?P<comment>!--)"
    r"|body\b|/head\s*>)",
    re.I,
)
_TITLE_END = re.compile(r"</title\s*>", re.I)
_TITLE_IN_BODY = 100_000
_OG_TITLE = re.compile(r"""\bproperty\s*=\s*["']?og:title\b""", re.I)
_CONTENT_ATTR = re.compile(r"""\bcontent\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")
_TITLE_MAX = 300
MAX_LINKS = 1000
"""Outgoing links kept per page (a tag cloud or a link list must not bloat the metadata)."""

# Non-breaking and other Unicode spaces: markdownify strips them at the edges of inline markup
# (``<b>stocks&nbsp;</b>are`` became ``**stocks**are``); as plain spaces they survive.
_UNICODE_SPACES = dict.fromkeys([0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000], " ")
_IMAGE_FILE = re.compile(r"\.(?:jpe?g|png|gif|webp|svg|bmp|tiff?|avif|heic)\b", re.I)
# Alt texts that say only that there is an image.
_GENERIC_ALT = frozenset(
    "image img photo photograph picture pic graphic logo icon thumbnail thumb banner placeholder avatar "
    "spacer untitled figure illustration default blank header hero".split()
)


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """How HTML becomes text; the defaults suit passages an LLM reads."""

    keep_links: bool = False
    """Render links as markdown ``[words](url)`` instead of their words alone."""
    include_images: bool = False
    """Keep images (as their alt text, where it carries words) and their captions. Off by default:
    captions and alt texts repeat the article and are outside the annotated body of real pages."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ConvertOptions:
        return cls(keep_links=settings.keep_links, include_images=settings.include_images)


@dataclass(frozen=True, slots=True)
class ConvertedPage:
    """A converted page: title, text ready for tagging, and the outgoing links of its main content."""

    title: str
    text: str
    links: tuple[Link, ...] = ()


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
    """The page's ``<title>`` (else ``og:title``), unescaped and on one line; "" when there is none.

    The head is read whole however large it is (scripts, styles, SVG and comments are skipped, not
    searched); real pages also put their title just past ``<body>``, so the search goes on for
    ``_TITLE_IN_BODY`` characters there, never through the whole body.
    """
    og_title = ""
    position = 0
    stop = len(html)
    while (match := _HEAD_TAG.search(html, position)) and match.start() < stop:
        position = match.end()
        if match["raw"]:
            raw_end = _raw_text_end(match["raw"].lower()).search(html, position)
            if raw_end is None:
                break
            position = raw_end.end()
        elif match["title"]:
            title_end = _TITLE_END.search(html, position)
            if title_end is None:
                break
            title = _one_line(html[html.find(">", position) + 1 : title_end.start()])
            if title:
                return title
            position = title_end.end()
        elif match["meta"]:
            tag = html[position : position + 2048].split(">", 1)[0]
            if not og_title and _OG_TITLE.search(tag) and (content := _CONTENT_ATTR.search(tag)):
                og_title = _one_line(content.group(1) or content.group(2) or "")
        elif match["comment"]:
            comment_end = html.find("-->", position)
            if comment_end < 0:
                break
            position = comment_end + 3
        else:  # the head ends or the body starts
            stop = min(stop, match.start() + _TITLE_IN_BODY)
    return og_title


@functools.cache
def _raw_text_end(tag: str) -> re.Pattern[str]:
    return re.compile(rf"</{tag}\s*>", re.I)


def _one_line(fragment: str) -> str:
    return " ".join(html_lib.unescape(re.sub(r"<[^>]*>", "", fragment)).split())[:_TITLE_MAX]


def markdown_title(text: str) -> str:
    match = _MD_HEADING.search(text[:20_000])
    return match.group(1).strip()[:_TITLE_MAX] if match else ""


def convert_html(html: str, *, url: str | None = None, options: ConvertOptions | None = None) -> ConvertedPage:
    """Title, main-content markdown and outgoing links of a page; plain text when extraction fails."""
    options = options or ConvertOptions()
    title = html_title(html)
    markdown = ""
    links: tuple[Link, ...] = ()
    try:
        markdown, links = _main_content_markdown(html, url, options)
    except (RecursionError, MemoryError, ValueError, TypeError, AttributeError, LookupError) as exc:
        logger.debug("main-content extraction failed (%s); using plain text", type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - third-party parsers on hostile input: never crash
        logger.warning("main-content extraction failed (%s); using plain text", type(exc).__name__)
    if not markdown.strip():
        markdown, links = html_to_text(html), ()
    markdown = _tidy(markdown)
    return ConvertedPage(title or markdown_title(markdown), markdown, links)


def html_to_markdown(html: str, *, url: str | None = None, options: ConvertOptions | None = None) -> tuple[str, str]:
    """``(title, markdown)`` of the page's main content (``convert_html`` without the links)."""
    page = convert_html(html, url=url, options=options)
    return page.title, page.text


def _main_content_markdown(html: str, url: str | None, options: ConvertOptions) -> tuple[str, tuple[Link, ...]]:
    tree = _main_content_tree(html, options)
    if tree is None:
        return "", ()
    from bs4 import BeautifulSoup
    from lxml import etree

    links = page_links(tree, url)
    if options.keep_links:
        _absolute_hrefs(tree, url)
    else:
        etree.strip_tags(tree, "a")
    _images_to_words(tree)
    simple_html = str(etree.tostring(tree, encoding="unicode")).translate(_UNICODE_SPACES)
    soup = BeautifulSoup(_inline_code_fix(simple_html), "lxml")
    return _markdown_converter().convert_soup(soup), links


def _main_content_tree(html: str, options: ConvertOptions) -> Any:
    """trafilatura's main content as a simple HTML tree (headings, paragraphs, lists, tables, links)."""
    import trafilatura

    # No url: trafilatura would resolve relative links against the site's root, not the page;
    # page_links resolves them against the page itself.
    settings: dict[str, Any] = {
        "include_comments": False,
        "include_tables": True,
        "include_links": True,
        "include_formatting": True,
        "include_images": options.include_images,
        "deduplicate": False,
    }
    try:
        from trafilatura.htmlprocessing import convert_to_html
    except ImportError:  # layout of a future trafilatura: the public (slower) path
        import lxml.html

        extracted = trafilatura.extract(html, output_format="html", **settings)
        return lxml.html.document_fromstring(extracted) if extracted else None
    # What extract(output_format="html") does, minus a content fingerprint that costs more than the
    # extraction itself and a serialisation that would only be parsed again here.
    document = trafilatura.bare_extraction(html, output_format="html", **settings)
    if document is None or isinstance(document, dict) or document.body is None:
        return None
    return convert_to_html(document.body)


def page_links(tree: Any, base_url: str | None) -> tuple[Link, ...]:
    """The ``<a href>`` links of ``tree`` as absolute http(s) URLs with their words, in reading order.

    Links into the page itself (``#section``) and repeats of the same target with the same words are
    left out; at most ``MAX_LINKS``.
    """
    page = urldefrag(base_url)[0] if base_url else None
    seen: set[tuple[str, str]] = set()
    links: list[Link] = []
    for anchor in tree.iter("a"):
        target = _absolute(anchor.get("href"), base_url)
        if target is None or urldefrag(target)[0] == page:
            continue
        link = Link(target, " ".join("".join(anchor.itertext()).split()))
        if (link.url, link.text) not in seen:
            seen.add((link.url, link.text))
            links.append(link)
            if len(links) >= MAX_LINKS:
                break
    return tuple(links)


def _absolute(href: str | None, base_url: str | None) -> str | None:
    href = (href or "").strip()
    if not href:
        return None
    try:
        target = urljoin(base_url, href) if base_url else href
        parts = urlsplit(target)
    except ValueError:
        return None
    return target if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _absolute_hrefs(tree: Any, base_url: str | None) -> None:
    for anchor in tree.iter("a"):
        target = _absolute(anchor.get("href"), base_url)
        if target is not None:
            anchor.set("href", target)


def _images_to_words(tree: Any) -> None:
    """Each ``<img>`` becomes its alt text where that carries words, else nothing."""
    for image in list(tree.iter("img")):
        words = alt_words(image.get("alt"))
        parent = image.getparent()
        if parent is None:
            continue
        text = (f" {words} " if words else "") + (image.tail or "")
        previous = image.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + text
        else:
            parent.text = (parent.text or "") + text
        parent.remove(image)


def alt_words(alt: str | None) -> str:
    """``alt`` on one line when it describes something; "" for empty, generic or file-name alt texts."""
    alt = " ".join((alt or "").split())
    if not alt or "://" in alt or _IMAGE_FILE.search(alt):
        return ""
    words = [w.strip(".,;:!?()[]'\"").lower() for w in alt.split()]
    if any(len(w) > 1 and w.isalpha() and w not in _GENERIC_ALT for w in words):
        return alt
    return ""


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


def convert_local_file(path: Path, *, options: ConvertOptions | None = None) -> tuple[str, str]:
    """``(title, text)`` of a local ``.html/.htm/.md/.markdown/.txt/.pdf`` file."""
    page = convert_file(path, options=options)
    return page.title, page.text


def convert_file(path: Path, options: ConvertOptions | None = None) -> ConvertedPage:
    """A local ``.html/.htm/.md/.markdown/.txt/.pdf`` file converted; ``InputError`` when unreadable."""
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
    links: tuple[Link, ...] = ()
    if suffix in PDF_SUFFIXES:
        title, text = pdf_to_text(data)
    elif suffix in HTML_SUFFIXES:
        page = convert_html(decode_body(data, None), options=options)
        title, text, links = page.title, page.text, page.links
    else:
        text = _tidy(decode_body(data, None))
        title = markdown_title(text)
    return ConvertedPage(title or path.stem, text, links)
