"""Ingestion: a source file (EPUB, Markdown, HTML, plain text, JSONL) read into a ``Book`` of chapters.

Every loader reads through ``safety`` (size limits, binary detection, strict
UTF-8, safe zips, offline XML without entities), so bad input ends in a
``BadInputError`` subclass whose message says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from producer.ingest.headings import speakable
from producer.ingest.jsonl import load_utterances
from producer.ingest.model import Book, Chapter, Utterance
from shared.errors import BadInputError, EmptyInputError, NotFoundError, UnsupportedFormatError

__all__ = ["FORMATS", "Book", "Chapter", "Utterance", "load_book", "load_utterances", "select_chapters"]

DEFAULT_MAX_BYTES = 200 * 1024 * 1024

FORMATS: dict[str, str] = {
    ".epub": "epub",
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".jsonl": "jsonl",
}
_SELECTION = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")


def _loader(kind: str) -> Callable[..., Book]:
    if kind == "epub":
        from producer.ingest.epub import load_epub

        return load_epub
    if kind == "md":
        from producer.ingest.markdown import load_markdown

        return load_markdown
    if kind == "html":
        from producer.ingest.html import load_html

        return load_html
    if kind == "jsonl":
        from producer.ingest.jsonl import load_jsonl_book

        return load_jsonl_book
    from producer.ingest.text import load_text

    return load_text


def load_book(
    path: Path,
    *,
    chapters: str | None = None,
    include_matter: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Book:
    """Read a book; ``chapters`` ("1-3,5", 1-based) picks among the chapters that would otherwise be read."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise BadInputError(f"{path} is a folder; give the path of a book file")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(FORMATS))
        raise UnsupportedFormatError(
            f"{path.name}: {path.suffix or 'files without an extension'} is not a supported format; "
            f"use one of {supported} (convert PDF, MOBI or DOCX to EPUB first, e.g. with Calibre)"
        )
    loader = _loader(kind)
    if kind in ("epub", "txt"):
        book = loader(path, include_matter=include_matter, max_bytes=max_bytes)
    else:
        book = loader(path, max_bytes=max_bytes)
    kept = [c for c in book.chapters if any(speakable(p) for p in c.paragraphs)]
    if not kept:
        raise EmptyInputError(f"{path.name} has no speakable text (no letters or digits); check the file")
    book = replace(book, chapters=kept)
    if chapters is not None:
        book = replace(book, chapters=select_chapters(book.chapters, chapters))
    return book


def select_chapters(available: list[Chapter], selection: str) -> list[Chapter]:
    """The chapters named by a selection like "1-3,5" or "4-" (1-based), in book order."""
    count = len(available)
    wanted: set[int] = set()
    for part in selection.split(","):
        match = _SELECTION.match(part)
        if not match:
            raise BadInputError(f"chapter selection {selection!r}: use numbers and ranges like 1-3,5 or 4-")
        first = int(match.group(1))
        last = first if match.group(2) is None else int(match.group(2) or count)
        if not 1 <= first <= last <= count:
            raise BadInputError(
                f"chapter selection {selection!r} is out of range: this book has {count} chapters (1-{count})"
            )
        wanted.update(range(first, last + 1))
    return [chapter for index, chapter in enumerate(available, start=1) if index in wanted]
