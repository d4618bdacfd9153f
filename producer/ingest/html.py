"""XHTML and HTML to blocks: readable text in document order, without what a listener should not hear.

Left out: scripts, styles, images, ruby annotations, page-break markers,
note references (``epub:type="noteref"``, ``role="doc-noteref"``, a linked or
superscript number), inline note bodies (``<aside epub:type="footnote">``) and
hidden elements. Also used for ``.html`` files, whose headings are chapters.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from lxml import etree

from producer.ingest.headings import Block, chapters_by_headings, clean_inline
from producer.ingest.model import Book
from producer.ingest.safety import decode_text, parse_markup, read_limited
from shared.frontend.dialogue import remove_mark_characters, voice_mark

_OPS_TYPE = "{http://www.idpf.org/2007/ops}type"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "header",
        "hgroup",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_SKIP_TAGS = frozenset(
    [
        "area",
        "audio",
        "button",
        "canvas",
        "embed",
        "head",
        "iframe",
        "img",
        "input",
        "map",
        "math",
        "nav",
        "noscript",
        "object",
        "picture",
        "rp",
        "rt",
        "script",
        "select",
        "source",
        "style",
        "svg",
        "template",
        "textarea",
        "title",
        "video",
    ]
)
_SKIP_TYPES = frozenset({"noteref", "annoref", "backlink", "pagebreak", "doc-noteref", "doc-backlink", "doc-pagebreak"})
_NOTE_BODIES = frozenset({"footnote", "endnote", "rearnote", "note", "doc-footnote", "doc-endnote"})
NOTE_SECTIONS = frozenset({"endnotes", "footnotes", "rearnotes", "doc-endnotes", "doc-footnotes"})
"""Note collections (a book's endnotes, a chapter's footnote list): back matter, read only on request."""
_HEADING_GROUP_LINES = frozenset({"p", "div", *_HEADINGS})
_NOTE_NUMBER = re.compile(r"^[\[(]?(?:\d{1,4}|[*†‡§¶#]+)[\])]?[.,]?$")
_NOTE_LINK = re.compile(r"^[\[(]?(?:\d{1,4}|[*†‡§¶#]+|[ivx]{1,5}|[a-z])[\])]?[.,]?$")


def localname(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2].lower()


def semantic_types(element: etree._Element) -> frozenset[str]:
    """epub:type and role tokens, lower-cased, vocabulary prefixes kept ('z3998:roman', 'doc-endnotes')."""
    values = " ".join(v for v in (element.get(_OPS_TYPE), element.get("epub:type"), element.get("role")) if v)
    return frozenset(values.lower().split()) if values else frozenset()


def _hidden(element: etree._Element) -> bool:
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    style = (element.get("style") or "").replace(" ", "").lower()
    return "display:none" in style


def _note_reference(element: etree._Element, name: str) -> bool:
    """A footnote marker: a superscript number or symbol, or an in-book link whose text is only a marker.

    Superscript letters are kept: they are ordinals such as 1<sup>st</sup> or 2<sup>e</sup>.
    """
    if name == "sup":
        return _NOTE_NUMBER.match(clean_inline("".join(element.itertext()))) is not None
    if name == "a" and "#" in (element.get("href") or ""):
        return _NOTE_LINK.match(clean_inline("".join(element.itertext()))) is not None
    return False


class _Collector:
    """Walks one document and emits blocks; inline text accumulates until a block boundary."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.blocks: list[Block] = []
        self._buffer: list[str] = []
        self._anchors: list[str] = []
        self._heading_depth = 0

    def flush(self, semantics: frozenset[str], level: int = 0) -> None:
        text = clean_inline("".join(self._buffer))
        self._buffer = []
        if text:
            kind: Literal["heading", "text"] = "heading" if level else "text"
            self.blocks.append(Block(kind, text, level, tuple(self._anchors), semantics, self.file))
            self._anchors = []

    def walk(self, element: etree._Element, semantics: frozenset[str], level: int = 0) -> None:
        name = localname(element)
        types = semantic_types(element)
        if (
            not name
            or name in _SKIP_TAGS
            or _hidden(element)
            or types & _SKIP_TYPES
            or (types & _NOTE_BODIES and not semantics & NOTE_SECTIONS)
            or _note_reference(element, name)
        ):
            self._tail(element)
            return
        if element.get("id"):
            self._anchors.append(str(element.get("id")))
        inner = semantics | types if types else semantics
        heading_level = _HEADINGS.get(name, 0)
        if name == "hgroup":
            heading_level = 7  # subtitle lines in a heading group are heading text too
        if self._heading_depth == 0 and (heading_level or name in _BLOCKS):
            self.flush(semantics)
            if heading_level:
                self._heading_depth += 1
            self._children(element, inner, heading_level)
            if heading_level:
                self._heading_depth -= 1
            self.flush(inner, heading_level)
        elif self._heading_depth and name in _HEADING_GROUP_LINES:
            # A heading group: each line is its own heading block at the group's level.
            self.flush(semantics, level)
            self._children(element, inner, level)
            self.flush(semantics, _HEADINGS.get(name, level))
        else:
            self._inline(element, name, inner, level)
        self._tail(element)

    def _inline(self, element: etree._Element, name: str, semantics: frozenset[str], level: int) -> None:
        if name == "br":
            self._buffer.append(" ")
            return
        self._children(element, semantics, level)

    def _children(self, element: etree._Element, semantics: frozenset[str], level: int) -> None:
        # data-voice names who reads the element's text (a character or a voice): it wins over heuristics.
        voice = element.get("data-voice") if not (level or self._heading_depth) else None
        start = len(self._buffer)
        if element.text:
            self._buffer.append(remove_mark_characters(element.text))
        for child in element:
            self.walk(child, semantics, level)
        if voice and voice.strip():
            self._buffer[start:] = [voice_mark(voice, "".join(self._buffer[start:]))]

    def _tail(self, element: etree._Element) -> None:
        if element.tail:
            self._buffer.append(remove_mark_characters(element.tail))


def body_of(root: etree._Element) -> etree._Element:
    for element in root.iter():
        if localname(element) == "body":
            return element
    return root


def extract_blocks(root: etree._Element, file: str = "") -> list[Block]:
    """The document's headings and paragraphs in reading order."""
    collector = _Collector(file)
    body = body_of(root)
    collector.walk(body, frozenset())
    collector.flush(semantic_types(body))
    return collector.blocks


def document_title(root: etree._Element) -> str | None:
    for element in root.iter():
        if localname(element) == "title":
            text = clean_inline("".join(element.itertext()))
            return text or None
    return None


def document_language(root: etree._Element) -> str | None:
    value = root.get(_XML_LANG) or root.get("lang")
    return value.strip() or None if value else None


def _meta(root: etree._Element, name: str) -> str | None:
    for element in root.iter():
        if localname(element) == "meta" and (element.get("name") or "").lower() == name:
            content = clean_inline(element.get("content") or "")
            if content:
                return content
    return None


def load_html(path: Path, *, max_bytes: int) -> Book:
    """An HTML file: headings are chapters; title from <title>, a leading title heading or the file name."""
    text = decode_text(read_limited(path, max_bytes), path.name)
    root = parse_markup(text.encode("utf-8"), path.name)
    blocks = extract_blocks(root, path.name)
    heading_title, chapters = chapters_by_headings(blocks, document_title(root) or path.stem)
    return Book(
        title=document_title(root) or heading_title or path.stem,
        author=_meta(root, "author"),
        language=document_language(root),
        chapters=chapters,
        source_format="html",
    )
