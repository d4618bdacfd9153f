"""EPUB 2 and 3: spine order, chapters from the table of contents, front/back matter left out by default.

Chapter boundaries are the table-of-contents targets (file and fragment), in
spine order, so one file may hold several chapters and one chapter may span
files. Entries nested in the same file as their parent (the numbered parts
of a Sherlock Holmes story) stay inside the parent chapter; an entry whose
children live in other files is a container (a volume or part): its
children become the chapters, titled "Volume I: Chapter I" unless the
container is only the book's half-title.

Front and back matter that a listener does not expect to hear is skipped:
cover, title and half-title pages, imprint, copyright and uncopyright,
colophon, table of contents, lists of illustrations, endnotes and
footnotes, index, bibliography, glossary, "also by" pages. Dedication,
epigraph, foreword, preface, introduction, prologue, epilogue, afterword
and acknowledgements are the author's words and are read.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from producer.ingest.epub_package import NavEntry, Package, check_drm, read_cover, read_package, table_of_contents
from producer.ingest.headings import Block, chapters_by_headings, make_chapter, speakable, words
from producer.ingest.html import NOTE_SECTIONS, document_language, document_title, extract_blocks
from producer.ingest.model import Book, Chapter
from producer.ingest.safety import SafeZip, parse_markup

_LOG = logging.getLogger(__name__)

MATTER_TYPES = frozenset(
    [
        "cover",
        "titlepage",
        "halftitlepage",
        "imprint",
        "copyright-page",
        "colophon",
        "toc",
        "loi",
        "lot",
        "landmarks",
        "endnotes",
        "footnotes",
        "rearnotes",
        "index",
        "errata",
        "bibliography",
        "glossary",
        "seriespage",
        "other-credits",
        "doc-cover",
        "doc-toc",
        "doc-colophon",
        "doc-endnotes",
        "doc-footnotes",
        "doc-index",
        "doc-bibliography",
        "doc-glossary",
        "doc-errata",
        "doc-credits",
    ]
)
_GUIDE_MATTER = frozenset(
    [
        "cover",
        "title-page",
        "copyright-page",
        "toc",
        "colophon",
        "notes",
        "index",
        "bibliography",
        "glossary",
        "loi",
        "lot",
    ]
)
_MATTER_LABEL = re.compile(
    r"^(?:cover|title ?page|half ?title(?: ?page)?|copyright(?: page)?|imprint|colophon|(?:table of )?contents|"
    r"uncopyright|(?:end|foot)?notes|index|landmarks|list of (?:illustrations|tables)|bibliography|glossary|"
    r"also by\b.*|other (?:books|titles|works) by\b.*|about the (?:author|publisher)s?)$",
    re.IGNORECASE,
)
_MATTER_FILE = re.compile(
    r"(?:^|[-_.])(?:cover|titlepage|title|halftitle(?:page)?|copyright|imprint|colophon|toc|nav|contents|"
    r"uncopyright|endnotes|footnotes|index)(?:$|[-_.\d])",
    re.IGNORECASE,
)
_MARK = "voxfarm:matter"


@dataclass(frozen=True)
class _Stream:
    blocks: list[Block]
    file_start: dict[str, int]
    anchors: dict[tuple[str, str], int]
    titles: dict[str, str | None]
    language: str | None


def is_matter(block: Block) -> bool:
    return bool(block.semantics & MATTER_TYPES) or _MARK in block.semantics


def load_epub(path: Path, *, include_matter: bool, max_bytes: int) -> Book:
    with SafeZip(path, max_bytes=max_bytes) as archive:
        package = read_package(archive)
        check_drm(archive, package)
        entries, landmarks = table_of_contents(archive, package)
        stream = _read_spine(archive, package, landmarks)
        title = package.title or path.stem
        chapters = _nav_chapters(entries, stream, title, include_matter) if entries else []
        if not chapters:
            chapters = _file_chapters(stream, title, include_matter)
        cover, cover_type = read_cover(archive, package)
    return Book(
        title=title,
        author=", ".join(package.authors) or None,
        language=package.language or stream.language,
        chapters=chapters,
        cover=cover,
        cover_type=cover_type,
        source_format="epub",
    )


def _file_is_matter(path: str, blocks: Sequence[Block], package: Package, landmarks: dict[str, str]) -> bool:
    if package.guide.get(path) in _GUIDE_MATTER or set(landmarks.get(path, "").split()) & MATTER_TYPES:
        return True
    has_semantics = any(b.semantics - {"bodymatter", "frontmatter", "backmatter"} for b in blocks)
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return not has_semantics and _MATTER_FILE.search(stem) is not None


def _read_spine(archive: SafeZip, package: Package, landmarks: dict[str, str]) -> _Stream:
    blocks: list[Block] = []
    file_start: dict[str, int] = {}
    anchors: dict[tuple[str, str], int] = {}
    titles: dict[str, str | None] = {}
    language = None
    for item, linear in package.spine:
        if not item.is_document or item.path in file_start:
            continue
        if item.path not in archive:
            _LOG.warning("%s: spine item %s is missing from the archive; skipped", archive.name, item.path)
            continue
        root = parse_markup(archive.read(item.path), item.path)
        language = language or document_language(root)
        document = extract_blocks(root, item.path)
        if not linear or _file_is_matter(item.path, document, package, landmarks):
            document = [replace(b, semantics=b.semantics | {_MARK}) for b in document]
        titles[item.path] = document_title(root)
        file_start[item.path] = len(blocks)
        for offset, block in enumerate(document):
            for anchor in block.anchors:
                anchors.setdefault((item.path, anchor), len(blocks) + offset)
        blocks.extend(document)
    return _Stream(blocks, file_start, anchors, titles, language)


def _target(entry: NavEntry, stream: _Stream) -> int | None:
    if entry.path is None or entry.path not in stream.file_start:
        return None
    if entry.fragment and (entry.path, entry.fragment) in stream.anchors:
        return stream.anchors[(entry.path, entry.fragment)]
    return stream.file_start[entry.path]


def _flatten(entries: Sequence[NavEntry], stream: _Stream, book_title: str, prefix: str = "") -> list[tuple[int, str]]:
    """(start block, title) for every chapter-level entry, containers expanded into their children."""
    starts: list[tuple[int, str]] = []
    for entry in entries:
        start = _target(entry, stream)
        if start is not None:
            starts.append((start, prefix + entry.label if entry.label else ""))
        if any(child.path and child.path != entry.path for child in entry.children):
            own_matter = start is not None and start < len(stream.blocks) and is_matter(stream.blocks[start])
            plain = own_matter or not entry.label or words(entry.label) == words(book_title)
            starts.extend(_flatten(entry.children, stream, book_title, prefix if plain else f"{prefix}{entry.label}: "))
    return starts


def _nav_chapters(entries: Sequence[NavEntry], stream: _Stream, book_title: str, include_matter: bool) -> list[Chapter]:
    by_start: dict[int, str] = {}
    for start, title in _flatten(entries, stream, book_title):
        by_start[start] = title  # the innermost entry wins where a container and its first child coincide
    if not by_start:
        return []
    starts = sorted(by_start)
    if starts[0] > 0:
        by_start[0] = ""
        starts.insert(0, 0)
    bounds = [*starts, len(stream.blocks)]
    chapters: list[Chapter] = []
    body_files = 0
    for start, end in itertools.pairwise(bounds):
        span = stream.blocks[start:end]
        if not span:
            continue
        label = by_start[start]
        matter = is_matter(span[0]) or bool(label and _MATTER_LABEL.match(label.rsplit(": ", 1)[-1]))
        if matter and not include_matter:
            continue
        body_files += not matter
        chapter = make_chapter(label or _fallback_title(span, stream, len(chapters)), _keep(span, include_matter))
        if chapter:
            chapters.append(chapter)
    body_documents = {b.file for b in stream.blocks if not is_matter(b) and speakable(b.text)}
    if body_files <= 1 and len(body_documents) > 2:
        return []  # a token table of contents ("Start"): chapters from the files and their headings instead
    return chapters


def _keep(blocks: Sequence[Block], include_matter: bool) -> list[Block]:
    """Inside a chapter: matter pages not listed in the contents, and footnote lists, are dropped by default."""
    if include_matter:
        return list(blocks)
    return [b for b in blocks if not is_matter(b) and not b.semantics & NOTE_SECTIONS]


def _fallback_title(span: Sequence[Block], stream: _Stream, index: int) -> str:
    heading = next((b.text for b in span if b.kind == "heading"), None)
    return heading or stream.titles.get(span[0].file) or f"Chapter {index + 1}"


def _file_chapters(stream: _Stream, book_title: str, include_matter: bool) -> list[Chapter]:
    """Without a usable table of contents: each document, split further at its own repeated headings."""
    chapters: list[Chapter] = []
    bounds = [*sorted(stream.file_start.values()), len(stream.blocks)]
    for start, end in itertools.pairwise(bounds):
        document = stream.blocks[start:end]
        if not document or (is_matter(document[0]) and not include_matter):
            continue
        kept = _keep(document, include_matter)
        fallback = _fallback_title(document, stream, len(chapters))
        _, found = chapters_by_headings(kept, fallback)
        chapters.extend(found)
    return chapters
