"""Blocks of a document and the rule that turns headings into chapters.

HTML, Markdown and plain text all reduce to a flat list of blocks (headings
with a level, and paragraphs); EPUB uses the same blocks but takes chapter
boundaries from its navigation document. Chapter titles are spoken by the
planner, so the opening heading is left out of a chapter's paragraphs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from producer.ingest.model import Chapter
from shared.frontend.numbers import roman_to_int

_WORDS = re.compile(r"\w+")
_INVISIBLE = dict.fromkeys(c for c in range(0x2000, 0x2070) if unicodedata.category(chr(c)) == "Cf")
_INVISIBLE.update({0xFEFF: None, 0x00AD: None, 0x180E: None})


@dataclass(frozen=True)
class Block:
    """A heading or a paragraph of plain text, with what EPUB needs to place and classify it."""

    kind: Literal["heading", "text"]
    text: str
    level: int = 0
    anchors: tuple[str, ...] = ()
    """Element ids that start at or just before this block (targets of nav links)."""
    semantics: frozenset[str] = field(default_factory=frozenset)
    """epub:type and ARIA role values of the enclosing elements (chapter, colophon, endnotes...)."""
    file: str = ""


def clean_inline(text: str) -> str:
    """Whitespace collapsed and invisible format characters (word joiners, zero widths) removed."""
    return " ".join(text.translate(_INVISIBLE).split())


def speakable(text: str) -> bool:
    """Any letter or digit: scene-break asterisks and rules are not read."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def words(text: str) -> list[str]:
    return _WORDS.findall(unicodedata.normalize("NFKC", text).casefold())


def _contained(inner: list[str], outer: list[str]) -> bool:
    if not inner:
        return True
    return any(outer[i : i + len(inner)] == inner for i in range(len(outer) - len(inner) + 1))


def is_bare_number(text: str) -> bool:
    """'IV', 'IV.', '12': a heading that is only a section number."""
    stripped = text.strip().rstrip(".")
    return stripped.isdigit() or roman_to_int(stripped) is not None


def make_chapter(title: str, blocks: Sequence[Block], instruct: str | None = None) -> Chapter | None:
    """A chapter from its blocks, or None when nothing in it can be spoken.

    Leading headings already said by the title are dropped; a later heading that
    is only a number ("II" inside a story) is read as "Part II".
    """
    title = clean_inline(title)
    title_words = words(title)
    paragraphs: list[str] = []
    leading = True
    for block in blocks:
        text = clean_inline(block.text)
        if not speakable(text):
            continue
        if block.kind == "heading":
            if leading and _contained(words(text), title_words):
                continue
            if is_bare_number(text):
                text = f"Part {text.rstrip('.')}"
        else:
            leading = False
        paragraphs.append(text)
    if not paragraphs:
        return None
    return Chapter(title=title, paragraphs=paragraphs, instruct=instruct)


def _is_container(blocks: Sequence[Block], index: int) -> bool:
    """A heading directly followed by a deeper heading ("Part One" before "Chapter 1")."""
    following = next((b for b in blocks[index + 1 :] if speakable(b.text)), None)
    return following is not None and following.kind == "heading" and following.level > blocks[index].level


def chapter_level(blocks: Sequence[Block]) -> int | None:
    """The top-most heading level that occurs more than once and is not only a container of deeper headings."""
    levels = [b.level for b in blocks if b.kind == "heading"]
    if not levels:
        return None
    for level in sorted(set(levels)):
        indexes = [i for i, b in enumerate(blocks) if b.kind == "heading" and b.level == level]
        if len(indexes) > 1 and not all(_is_container(blocks, i) for i in indexes):
            return level
    return min(levels)


def split_title(blocks: Sequence[Block]) -> tuple[str | None, list[Block]]:
    """A first heading whose level is used nowhere else is the book's title, not a chapter."""
    headings = [b for b in blocks if b.kind == "heading"]
    if len(headings) < 2:
        return None, list(blocks)
    first = headings[0]
    if first.level > min(h.level for h in headings) or sum(h.level == first.level for h in headings) > 1:
        return None, list(blocks)
    rest = list(blocks)
    rest.remove(first)
    return clean_inline(first.text), rest


def chapters_by_headings(blocks: Sequence[Block], fallback_title: str) -> tuple[str | None, list[Chapter]]:
    """(book title if a heading gave one, chapters): headings of the chapter level start chapters.

    Headings above that level ("Part One") prefix the titles of the chapters
    under them; deeper ones stay in the text and are read. Text before the
    first chapter heading becomes a chapter titled with the book's title.
    """
    title, blocks = split_title(blocks)
    level = chapter_level(blocks)
    if level is None:
        chapter = make_chapter(title or fallback_title, blocks)
        return title, [chapter] if chapter else []
    chapters: list[Chapter] = []
    current_title = title or fallback_title
    current: list[Block] = []
    prefix = ""
    for block in blocks:
        if block.kind == "heading" and block.level <= level:
            chapter = make_chapter(current_title, current)
            if chapter:
                chapters.append(chapter)
            current = []
            if block.level < level:
                prefix = clean_inline(block.text) + ": "
                current_title = clean_inline(block.text)
                continue
            current_title = prefix + clean_inline(block.text)
            current.append(block)
        else:
            current.append(block)
    chapter = make_chapter(current_title, current)
    if chapter:
        chapters.append(chapter)
    return title, chapters
