"""What ingestion produces: a book of chapters of plain-text paragraphs, and utterance lists."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chapter:
    """One chapter: its display title and its paragraphs in reading order (markup removed, whitespace collapsed).

    The opening heading is not repeated in ``paragraphs``: the title is what the
    chapter mark shows and what the planner speaks first.
    """

    title: str
    paragraphs: list[str]
    instruct: str | None = None
    """Optional voice instruction for instruction-following engines."""
    voice: str | None = None
    """The voice (or character) the source names for the whole chapter: a JSONL utterance's ``voice``."""


@dataclass(frozen=True)
class Book:
    """A source file read into chapters, with the metadata an audiobook file carries."""

    title: str
    author: str | None
    language: str | None
    chapters: list[Chapter]
    cover: bytes | None = None
    cover_type: str | None = None
    source_format: str = ""


@dataclass(frozen=True)
class Utterance:
    """One item of a JSONL batch: an id that names its output, the text, and optionally a voice."""

    id: str
    text: str
    voice: str | None = None
