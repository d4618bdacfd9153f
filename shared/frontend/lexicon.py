"""Pronunciation lexicon: per-book or per-voice fixes for words the engine says wrong.

File format (UTF-8, tab-separated, one entry a line)::

    # comments start with '#'; blank lines are ignored
    Weena<TAB>[[ wˈiːnə ]]        # raw phonemes for the voice (espeak IPA for Piper voices)
    Eloi<TAB>ee-loh-eye           # or a respelling, read like ordinary text
    St. Simon<TAB>Saint Simon     # an entry may be several words

Entries are matched as whole words in the normalised text (after numbers and
abbreviations are written out). An entry written with any capital letter
matches only that spelling; an all-lower-case entry matches any
capitalisation. Longer entries win over shorter ones. The substitution lands
in the segment text and so in its content key: changing an entry re-renders
exactly the segments that contain the word.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from shared.errors import BadInputError, NotFoundError

_MAX_FILE_BYTES = 8 * 1024 * 1024
_PHONEMES = re.compile(r"^\[\[.*\]\]$", re.S)


class Lexicon:
    """Whole-word substitutions applied to normalised text before phonemisation."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries: dict[str, str] = {}
        for raw_word, raw_replacement in entries.items():
            word, replacement = " ".join(raw_word.split()), raw_replacement.strip()
            if not word or not replacement:
                raise BadInputError(f"lexicon entry {word!r}: both the word and its replacement must be non-empty")
            if "[[" in replacement and not _PHONEMES.match(replacement):
                raise BadInputError(
                    f"lexicon entry {word!r}: write phonemes as one block, '[[ phonemes ]]', or use a plain respelling"
                )
            self._entries[word] = replacement
        self._lower = {w.lower(): r for w, r in self._entries.items() if w == w.lower()}
        self._pattern = self._compile(list(self._entries))

    @staticmethod
    def _compile(words: list[str]) -> re.Pattern[str] | None:
        """One pass over the text: longest entries first, existing phoneme blocks skipped."""
        if not words:
            return None
        words.sort(key=len, reverse=True)

        def alternative(word: str) -> str:
            body = r"\s+".join(re.escape(part) for part in word.split(" "))
            return f"(?i:{body})" if word == word.lower() else body

        alternatives = "|".join(alternative(w) for w in words)
        return re.compile(rf"(\[\[.*?\]\])|(?<!\w)(?:{alternatives})(?!\w)", re.S)

    @classmethod
    def from_file(cls, path: Path) -> Lexicon:
        """Read a lexicon file; a malformed line is an error naming its line number."""
        return cls.parse(cls.read_text(path), source=str(path))

    @staticmethod
    def read_text(path: Path) -> str:
        """A lexicon file's text, checked for size and encoding (the request of a job keeps it so)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"lexicon {path}: no such file; check the path") from None
        except OSError as exc:
            raise BadInputError(f"lexicon {path}: cannot read it ({exc.strerror})") from None
        if len(data) > _MAX_FILE_BYTES:
            raise BadInputError(f"lexicon {path}: larger than {_MAX_FILE_BYTES // 2**20} MiB; split it per book")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadInputError(f"lexicon {path}: not UTF-8 (byte {exc.start}); save it as UTF-8") from None
        return text

    @classmethod
    def parse(cls, text: str, *, source: str = "lexicon") -> Lexicon:
        entries: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = _strip_comment(raw).strip()
            if not line:
                continue
            word, tab, replacement = line.partition("\t")
            if not tab or not word.strip() or not replacement.strip():
                raise BadInputError(f"{source}, line {number}: expected 'word<TAB>replacement', got {raw.strip()!r}")
            entries[word.strip()] = replacement.strip()
        return cls(entries)

    def apply(self, text: str) -> str:
        """Replace every whole-word occurrence; phoneme entries become ``[[ ... ]]`` blocks in the text."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._replacement, text)

    def _replacement(self, match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1)
        found = " ".join(match.group(0).split())
        return self._entries.get(found) or self._lower[found.lower()]

    @property
    def fingerprint(self) -> str:
        """sha256 of the entries: equal for equal lexicons, whatever the file's order or comments."""
        canonical = "\n".join(f"{w}\t{r}" for w, r in sorted(self._entries.items()))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def entries(self) -> dict[str, str]:
        return dict(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)


def _strip_comment(line: str) -> str:
    """Drop a '#' comment, unless the '#' sits inside a phoneme block."""
    depth = 0
    for index, char in enumerate(line):
        if line.startswith("[[", index):
            depth += 1
        elif line.startswith("]]", index):
            depth = max(0, depth - 1)
        elif char == "#" and depth == 0:
            return line[:index]
    return line
