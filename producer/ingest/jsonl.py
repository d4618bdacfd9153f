"""JSONL utterance lists: one JSON object a line, for batch work that is not a book.

Each line is ``{"id": "...", "text": "...", "voice": "..."}`` with ``voice``
optional. Ids name output files and storage keys, so they follow the
safe-name rule of job ids (letters, digits, '-' and '_'); they must be unique.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from producer.ingest.headings import clean_inline, speakable
from producer.ingest.model import Book, Chapter, Utterance
from producer.ingest.safety import decode_text, read_limited
from shared.errors import BadInputError, EmptyInputError
from shared.names import JOB_ID_PATTERN, check_voice_id

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_TEXT_CHARS = 100_000
_ID = re.compile(JOB_ID_PATTERN)
_KEYS = frozenset({"id", "text", "voice"})


def _line_error(path: Path, number: int, problem: str) -> BadInputError:
    return BadInputError(f"{path.name}, line {number}: {problem}")


def _utterance(path: Path, number: int, line: str) -> Utterance:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _line_error(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise _line_error(path, number, 'expected an object like {"id": "intro-1", "text": "Hello."}')
    unknown = set(record) - _KEYS
    if unknown:
        raise _line_error(path, number, f"unknown field(s) {sorted(unknown)}; allowed: id, text, voice")
    ident, text, voice = record.get("id"), record.get("text"), record.get("voice")
    if not isinstance(ident, str) or not _ID.match(ident):
        rule = "use 1-80 letters, digits, '-' or '_', starting with a letter or digit"
        raise _line_error(path, number, f"id {ident!r} is not a safe name: {rule}")
    if not isinstance(text, str) or not speakable(text):
        raise _line_error(path, number, "text must be a string with something to say (letters or digits)")
    if len(text) > MAX_TEXT_CHARS:
        raise _line_error(path, number, f"text is {len(text)} characters (limit {MAX_TEXT_CHARS}); split it")
    if voice is not None:
        if not isinstance(voice, str):
            raise _line_error(path, number, "voice must be a string such as en_US-joe-medium")
        try:
            check_voice_id(voice)
        except BadInputError as exc:
            raise _line_error(path, number, str(exc)) from None
    return Utterance(id=ident, text=clean_inline(text), voice=voice)


def load_utterances(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Utterance]:
    """Every utterance of a JSONL file; a bad line is an error that names its line number."""
    text = decode_text(read_limited(path, max_bytes), path.name)
    utterances: list[Utterance] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        utterance = _utterance(path, number, line)
        if utterance.id in seen:
            raise _line_error(
                path, number, f"id {utterance.id!r} repeats line {seen[utterance.id]}; ids must be unique"
            )
        seen[utterance.id] = number
        utterances.append(utterance)
    if not utterances:
        raise EmptyInputError(f"{path.name} has no utterances; write one JSON object per line")
    return utterances


def load_jsonl_book(path: Path, *, max_bytes: int) -> Book:
    """An utterance list as a book: one chapter per utterance, titled by its id."""
    chapters = [
        Chapter(title=u.id, paragraphs=[u.text], voice=u.voice) for u in load_utterances(path, max_bytes=max_bytes)
    ]
    return Book(title=path.stem, author=None, language=None, chapters=chapters, source_format="jsonl")
