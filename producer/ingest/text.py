"""Plain text: paragraphs by blank lines, chapter headings found by their shape.

Recognised headings (on a line of their own): "CHAPTER IV", "Chapter 4",
"Chapter the Fourth", "Chapter Twenty-One", "BOOK II", "PART ONE",
"Letter 3", a bare Roman numeral ("XII." or "XII"), "PROLOGUE" and the like,
and Chinese "第十二章", "第三回", "第2节". A Project Gutenberg header and
licence footer are cut off; a leading ``Title:`` / ``Author:`` /
``Language:`` block gives the metadata. The text is never interpreted:
markup such as ``<speak>`` in a .txt file is just characters.
"""

from __future__ import annotations

import re
from pathlib import Path

from producer.ingest.headings import Block, chapters_by_headings, clean_inline
from producer.ingest.model import Book
from producer.ingest.safety import decode_text, read_limited
from shared.frontend.chinese import is_chinese
from shared.frontend.numbers import roman_to_int

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|"
    "eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|first|second|third|fourth|"
    "fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|last|final"
)
_KEYWORD_HEADING = re.compile(
    rf"^(?i:chapter|book|part|volume|letter|canto|stave|section)\s+"
    rf"(?i:[ivxlcdm]+\b|\d+\b|(?:the\s+)?(?:(?:{_NUMBER_WORDS})[\s-]*)+)[.:]?(?:\s*[-—:.]\s*\S.*|\s+[A-Z\"'“].*)?$"
)
_NAMED_HEADING = re.compile(
    r"^(?:prologue|epilogue|preface|foreword|introduction|afterword|conclusion|the end)\.?$", re.IGNORECASE
)
_ROMAN_HEADING = re.compile(r"^([IVXLCDM]+)\.?$")
_CHINESE_HEADING = re.compile(r"^第[零〇一二三四五六七八九十百千万两\d]+[章回节節卷部篇集幕]")
_PG_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_PG_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_META_LINE = re.compile(r"^\s*(title|author|language|translator|release date|credits)\s*:\s*(.*?)\s*$", re.I)
_LANGUAGES = {
    "english": "en", "chinese": "zh", "french": "fr", "german": "de", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "russian": "ru", "japanese": "ja", "latin": "la",
}  # fmt: skip
_INDENT = re.compile(r"^(?:\s{2,}|\t|\u3000)")


def _numbered_heading(line: str) -> bool:
    if _KEYWORD_HEADING.match(line) or _CHINESE_HEADING.match(line):
        return True
    roman = _ROMAN_HEADING.match(line)
    return roman is not None and roman_to_int(roman.group(1)) is not None


def is_heading(line: str) -> bool:
    """Whether one line, standing alone, has the shape of a chapter heading."""
    line = line.strip()
    if not line or len(line) > 100:
        return False
    return _numbered_heading(line) or _NAMED_HEADING.match(line) is not None


def _heading_title(first: str, subtitle: str | None) -> str:
    """'CHAPTER I.' + 'INTRODUCTION' -> 'CHAPTER I: INTRODUCTION'."""
    first = clean_inline(first)
    if not subtitle:
        return first
    return f"{first.rstrip('.:')}: {clean_inline(subtitle)}"


def _is_subtitle(line: str) -> bool:
    line = line.strip()
    return 0 < len(line) < 60 and not line.endswith((".", "!", "?", "。", "！", "？", '"', "”", "’"))


def _metadata(lines: list[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for line in lines:
        if match := _META_LINE.match(line):
            meta.setdefault(match.group(1).lower(), match.group(2))
    return meta


def split_gutenberg(text: str) -> tuple[dict[str, str], str]:
    """Metadata and body: a Project Gutenberg header/footer, else a leading 'Key: value' block, is removed."""
    start, end = _PG_START.search(text), _PG_END.search(text)
    if start:
        meta = _metadata(text[: start.start()].splitlines()[:80])
        body = text[start.end() : end.start() if end and end.start() > start.end() else len(text)]
        return meta, body
    lines = text.split("\n")
    head: list[str] = []
    for line in lines:
        if not line.strip():
            break
        head.append(line)
    if head and all(_META_LINE.match(line) for line in head):
        return _metadata(head), "\n".join(lines[len(head) :])
    return {}, text


def _join_lines(lines: list[str]) -> str:
    """Hard-wrapped lines back into one paragraph; no space is inserted between Chinese characters."""
    out = ""
    for line in (line.strip() for line in lines):
        if out and not (is_chinese(out[-1]) and is_chinese(line[:1])):
            out += " "
        out += line
    return clean_inline(out)


def text_blocks(body: str) -> list[Block]:
    """Paragraphs and headings; each line is its own paragraph where lines are indented or never blank-separated."""
    chunks = [c for c in re.split(r"\n\s*\n", body) if c.strip()]
    one_per_line = len(chunks) == 1 and body.count("\n") > 3
    blocks: list[Block] = []
    for chunk in chunks:
        lines = [line for line in chunk.split("\n") if line.strip()]
        if sum(_numbered_heading(line.strip()) for line in lines) > 1 and all(is_heading(line) for line in lines):
            continue  # a table of contents: a run of heading lines with nothing under them
        per_line = one_per_line or (len(lines) > 1 and all(_INDENT.match(line) for line in lines[1:]))
        groups = [[line] for line in lines] if per_line else [lines]
        for group in groups:
            if not is_heading(group[0]):
                blocks.append(Block("text", _join_lines(group)))
            elif len(group) == 2 and _is_subtitle(group[1]):
                blocks.append(Block("heading", _heading_title(group[0], group[1]), 1))
            else:
                blocks.append(Block("heading", _heading_title(group[0], None), 1))
                if group[1:]:
                    blocks.append(Block("text", _join_lines(group[1:])))
    return blocks


def _drop_title_page(blocks: list[Block]) -> list[Block]:
    """Short lines before the first chapter heading (title, byline, contents) are a title page, not prose."""
    first = next((i for i, b in enumerate(blocks) if b.kind == "heading"), None)
    if not first or any(len(b.text) >= 100 or b.text.endswith((".", "!", "?", "。")) for b in blocks[:first]):
        return blocks
    return blocks[first:]


def _language(meta: dict[str, str], body: str) -> str | None:
    value = meta.get("language", "").strip()
    if value:
        return _LANGUAGES.get(value.lower(), value if re.fullmatch(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]+)*", value) else None)
    return "zh" if is_chinese(body[:4000]) else None


def load_text(path: Path, *, max_bytes: int, include_matter: bool = False) -> Book:
    text = decode_text(read_limited(path, max_bytes), path.name).replace("\r\n", "\n").replace("\r", "\n")
    meta, body = split_gutenberg(text)
    title = clean_inline(meta.get("title", "")) or path.stem
    blocks = text_blocks(body)
    if not include_matter:
        blocks = _drop_title_page(blocks)
    if blocks and blocks[0].kind == "text" and clean_inline(blocks[0].text).casefold() == title.casefold():
        blocks = blocks[1:]  # the title repeated as the first line
    _, chapters = chapters_by_headings(blocks, title)
    return Book(
        title=title,
        author=clean_inline(meta.get("author", "")) or None,
        language=_language(meta, body),
        chapters=chapters,
        source_format="txt",
    )
