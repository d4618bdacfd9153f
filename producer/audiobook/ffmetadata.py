"""FFmpeg's metadata file format (``;FFMETADATA1``): book tags and chapter marks for the M4B.

Chapter titles come from books, so they may hold anything: '=', ';', '#',
backslashes and newlines are special in this format and are escaped with a
backslash; whitespace runs (newlines included) are first collapsed to one
space, because a chapter mark is one line on every player; control
characters are dropped, and so are backslashes at the very end (ffmpeg's
reader takes an escaped backslash before the newline for an escaped
newline, and the next chapter would vanish into this title). Everything
else, Unicode included, is written as it is (the file is UTF-8).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HEADER = ";FFMETADATA1"
_SPECIAL = re.compile(r"([=;#\\\n])")
MAX_VALUE_CHARS = 1000


@dataclass(frozen=True)
class ChapterMark:
    """A chapter from ``start`` to ``end``, counted in ticks of the document's time base (e.g. samples)."""

    title: str
    start: int
    end: int


def clean_value(value: str) -> str:
    """One line of printable text: whitespace runs collapsed, control and format characters removed."""
    text = " ".join(value.split())
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    return text[:MAX_VALUE_CHARS].rstrip("\\ ")


def escape(value: str) -> str:
    """Escape a (cleaned) value for an ffmetadata file."""
    return _SPECIAL.sub(r"\\\1", value)


def _key(key: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
        raise ValueError(f"unusual metadata key {key!r}")
    return key


def document(tags: Mapping[str, str | None], chapters: Sequence[ChapterMark] = (), *, ticks_per_s: int = 1000) -> str:
    """The ffmetadata text for global ``tags`` (None values are left out) and chapter marks.

    ``ticks_per_s`` is the chapters' time base: the sample rate puts each mark on its exact sample.
    """
    lines = [HEADER]
    for key, value in tags.items():
        if value is not None and clean_value(value):
            lines.append(f"{_key(key)}={escape(clean_value(value))}")
    for chapter in chapters:
        if chapter.end < chapter.start or chapter.start < 0:
            raise ValueError(f"chapter {chapter.title!r} ends before it starts")
        lines += [
            "[CHAPTER]",
            f"TIMEBASE=1/{int(ticks_per_s)}",
            f"START={chapter.start}",
            f"END={chapter.end}",
            f"title={escape(clean_value(chapter.title))}",
        ]
    return "\n".join(lines) + "\n"


def parse(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Read an ffmetadata document back: (global tags, chapters as dicts of their keys); for checks and tests."""
    tags: dict[str, str] = {}
    chapters: list[dict[str, str]] = []
    current = tags
    for line in _logical_lines(text):
        if not line or line.startswith((";", "#")):
            continue
        if line.startswith("["):
            if line.strip() == "[CHAPTER]":
                chapters.append({})
                current = chapters[-1]
            else:
                current = {}
            continue
        key, value = _split(line)
        current[key] = value
    return tags, chapters


def _logical_lines(text: str) -> list[str]:
    """Split at newlines that are not escaped, keeping escapes for ``_split``."""
    lines: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        lines.append("".join(current))
    return lines


def _split(line: str) -> tuple[str, str]:
    key: list[str] = []
    value: list[str] = []
    escaped = seen_equals = False
    for ch in line:
        target = value if seen_equals else key
        if escaped:
            target.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "=" and not seen_equals:
            seen_equals = True
        else:
            target.append(ch)
    return "".join(key), "".join(value)
