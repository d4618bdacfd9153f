"""Per-chapter voice instructions from a sidecar file next to the book: ``<book>.voice.toml``.

Instruction-following engines (qwen3-tts) read each chapter with an
instruction: narration in one tone, a dialogue-heavy chapter in another.
The book's own markup can carry one for the whole book (Markdown front
matter ``instruct:``); the sidecar sets it per chapter, for any format::

    # the-book.voice.toml, beside the-book.epub
    instruct = "Calm, even narration."      # every chapter without its own

    [chapters]
    3 = "Lively dialogue between two friends, quicker pace."   # by number, as `voxfarm plan` lists them
    "The Storm" = "Tense and hushed."                          # or by title (case-insensitive)

A chapter entry wins over the sidecar's ``instruct``, which wins over the
book's markup; chapters it does not name keep what the book says. Numbers
count the book's chapters before any ``--chapters`` selection.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from producer.ingest import Book
from shared.errors import BadInputError
from shared.schema import MAX_INSTRUCT_CHARS

SUFFIX = ".voice.toml"


@dataclass(frozen=True)
class VoiceSidecar:
    instruct: str | None
    by_number: dict[int, str]
    by_title: dict[str, str]
    path: Path

    def instruct_for(self, number: int, title: str) -> str | None:
        """The sidecar's instruction for the chapter numbered ``number`` (1-based) titled ``title``."""
        return self.by_number.get(number) or self.by_title.get(title.strip().casefold()) or self.instruct


def sidecar_path(book: Path) -> Path:
    return book.with_name(book.stem + SUFFIX)


def load_sidecar(path: Path) -> VoiceSidecar:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInputError(f"{path.name}: not a readable voice sidecar ({exc})") from exc
    unknown = set(document) - {"instruct", "chapters"}
    if unknown:
        raise BadInputError(f"{path.name}: unknown keys {sorted(unknown)}; use 'instruct' and a [chapters] table")
    by_number: dict[int, str] = {}
    by_title: dict[str, str] = {}
    chapters = document.get("chapters", {})
    if not isinstance(chapters, dict):
        raise BadInputError(f"{path.name}: [chapters] must be a table of chapter number or title = instruction")
    for key, value in chapters.items():
        text = _instruction(path, f"chapters.{key}", value)
        if key.strip().isdigit():
            by_number[int(key)] = text
        else:
            by_title[key.strip().casefold()] = text
    default = document.get("instruct")
    instruct = _instruction(path, "instruct", default) if default is not None else None
    return VoiceSidecar(instruct, by_number, by_title, path)


def _instruction(path: Path, where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInputError(f"{path.name}: {where} must be a non-empty string")
    if len(value) > MAX_INSTRUCT_CHARS:
        raise BadInputError(f"{path.name}: {where} is longer than {MAX_INSTRUCT_CHARS} characters")
    return value.strip()


def apply_sidecar(book: Book, book_path: Path) -> Book:
    """The book with the instructions of its sidecar, if it has one (before any chapter selection)."""
    path = sidecar_path(Path(book_path))
    if not path.is_file():
        return book
    sidecar = load_sidecar(path)
    chapters = [
        replace(chapter, instruct=sidecar.instruct_for(number, chapter.title) or chapter.instruct)
        for number, chapter in enumerate(book.chapters, start=1)
    ]
    return replace(book, chapters=chapters)
