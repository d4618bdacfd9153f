"""Markdown: headings are chapters; an optional front-matter block gives title, author and language.

Front matter is a simple ``key: value`` block between ``---`` lines at the top
(no YAML library needed; lists and nesting are ignored). Code blocks, images,
link targets, footnote references and definitions, HTML tags and emphasis
markers are not read; link text, list items, quotes and table cells are.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path

from producer.ingest.headings import Block, chapters_by_headings
from producer.ingest.model import Book
from producer.ingest.safety import decode_text, read_limited
from shared.frontend.dialogue import remove_mark_characters, voice_mark

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:\s*\1){2,}\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+")
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_FOOTNOTE_DEF = re.compile(r"^ {0,3}\[\^[^\]]+\]:")
_LINK_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")

_INLINE = (
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),
    (re.compile(r"\[\^[^\]]+\]"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"<(?:https?|mailto):[^>]*>"), ""),
    (re.compile(r"<[^>\n]+>"), ""),
    (re.compile(r"`+([^`]*)`+"), r"\1"),
    (re.compile(r"~~(.+?)~~"), r"\1"),
    (re.compile(r"(?<![\w*])(\*{1,3}|_{1,3})(?=\S)(.+?)(?<=\S)\1(?![\w*])"), r"\2"),
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),
)
_FRONT_KEYS = {"title", "author", "authors", "creator", "language", "lang", "instruct"}


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """({key: value}, the rest) when the text opens with a '---' block; keys lower-cased."""
    lines = text.lstrip("\ufeff").split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, min(len(lines), 200)):
        if lines[end].strip() in ("---", "..."):
            meta: dict[str, str] = {}
            for line in lines[1:end]:
                key, colon, value = line.partition(":")
                key = key.strip().lower()
                if colon and key in _FRONT_KEYS and value.strip():
                    meta.setdefault(key, value.strip().strip("\"'").strip())
            return meta, "\n".join(lines[end + 1 :])
    return {}, text


_VOICE_NAME = r"[^\"'<>{}\[\]\n]{1,80}?"
_VOICED = (
    # <span data-voice="holmes">…</span> (any element), as in HTML.
    re.compile(rf"<(\w+)[^>\n]*?\bdata-voice\s*=\s*[\"']({_VOICE_NAME})[\"'][^>\n]*>(.*?)</\1\s*>"),
    # Pandoc's bracketed span: [“Indeed.”]{voice="holmes"} or {data-voice=holmes}.
    re.compile(rf"\[([^\]]+)\]\{{\s*(?:data-)?voice\s*=\s*[\"']?({_VOICE_NAME})[\"']?\s*\}}"),
)


def _voiced(text: str) -> str:
    """Voice markup as ingestion's voice marks (see shared.frontend.dialogue)."""
    text = _VOICED[0].sub(lambda m: voice_mark(m.group(2), m.group(3)), text)
    return _VOICED[1].sub(lambda m: voice_mark(m.group(2), m.group(1)), text)


def inline_text(text: str) -> str:
    text = _voiced(remove_mark_characters(text))
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return html.unescape(text)


def markdown_blocks(text: str) -> list[Block]:
    """Headings and paragraphs of a Markdown document, in order."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    fence: str | None = None
    skipping_definition = False

    def flush() -> None:
        if paragraph:
            joined = inline_text(" ".join(paragraph))
            if joined.strip():
                blocks.append(Block("text", " ".join(joined.split())))
            paragraph.clear()

    for line in text.split("\n"):
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        if match := _FENCE.match(line):
            flush()
            fence = match.group(1)
            continue
        if not line.strip():
            flush()
            skipping_definition = False
            continue
        if skipping_definition and line.startswith((" ", "\t")):
            continue
        skipping_definition = False
        if _FOOTNOTE_DEF.match(line) or _LINK_DEF.match(line):
            flush()
            skipping_definition = True
            continue
        if (setext := _SETEXT.match(line)) and len(paragraph) == 1:
            level = 1 if setext.group(1).startswith("=") else 2
            blocks.append(Block("heading", " ".join(inline_text(paragraph[0]).split()), level))
            paragraph.clear()
            continue
        if _RULE.match(line) or _TABLE_RULE.match(line):
            flush()
            continue
        if atx := _ATX.match(line):
            flush()
            heading = " ".join(inline_text(atx.group(2) or "").split())
            if heading:
                blocks.append(Block("heading", heading, len(atx.group(1))))
            continue
        content = _QUOTE.sub("", line)
        if _LIST.match(content):
            flush()
            content = _LIST.sub("", content)
        if content.strip().startswith("|"):
            flush()
            cells = (cell.strip() for cell in content.strip().strip("|").split("|"))
            paragraph.append(", ".join(cell for cell in cells if cell))
            flush()
            continue
        paragraph.append(content.strip())
    flush()
    return blocks


def load_markdown(path: Path, *, max_bytes: int) -> Book:
    text = decode_text(read_limited(path, max_bytes), path.name)
    meta, body = front_matter(text.replace("\r\n", "\n").replace("\r", "\n"))
    fallback = meta.get("title") or path.stem
    heading_title, chapters = chapters_by_headings(markdown_blocks(body), fallback)
    instruct = meta.get("instruct")
    if instruct:
        chapters = [replace(c, instruct=c.instruct or instruct) for c in chapters]
    return Book(
        title=meta.get("title") or heading_title or path.stem,
        author=meta.get("author") or meta.get("authors") or meta.get("creator"),
        language=meta.get("language") or meta.get("lang"),
        chapters=chapters,
        source_format="md",
    )
