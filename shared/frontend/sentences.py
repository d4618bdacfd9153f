"""Sentence, clause and word boundaries, for English-like and Chinese text.

One sentence becomes one audio clip, so a wrong break is audible: a pause
after "Mr." or inside "T. S. Eliot". The splitter therefore knows the
abbreviations and initials that end in a period without ending a sentence.
Clause and word splitting exist for sentences too long for the largest
length bucket; they keep raw phoneme blocks ``[[ ... ]]`` whole.
"""

from __future__ import annotations

import re

from shared.frontend.chinese import is_chinese

# A period after these never ends a sentence: a name or a number follows.
_TITLES = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "mx",
        "dr",
        "st",
        "prof",
        "rev",
        "hon",
        "capt",
        "col",
        "gen",
        "lt",
        "sgt",
        "cpl",
        "gov",
        "sen",
        "rep",
        "messrs",
        "mme",
        "mlle",
        "mm",
        "mt",
        "fr",
        "no",
        "nos",
        "vol",
        "vols",
        "fig",
        "figs",
        "p",
        "pp",
        "ch",
        "art",
        "op",
        "ed",
        "eds",
        "e.g",
        "i.e",
        "cf",
        "viz",
        "vs",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)

_CLOSERS = "\"'”’»)]}」』）"
_OPENERS = "\"'“‘«([{「『（"
_BOUNDARY = re.compile(rf"(?:[.!?]+|…)[{re.escape(_CLOSERS)}]*(?=\s+)")
_WORD_BEFORE = re.compile(r"([\w.]+)[.!?]*$")
_ZH_BOUNDARY = re.compile(rf"(?:[。！？；!?;]+|…+|\.{{3,}})[{re.escape(_CLOSERS)}]*")
_CLAUSE = re.compile(r"(?:[,;:]|[，、；：])[\"'”’»)\]」』）]*+(?:\s+|$|(?=\S))")
_TOKEN = re.compile(r"\[\[.*?\]\]\S*\s*|\S+\s*", re.S)
_PHONEME_BLOCK = re.compile(r"\[\[.*?\]\]", re.S)


def _ends_sentence(text: str, start: int, end: int) -> bool:
    """Whether the punctuation run text[start:end] closes a sentence."""
    mark = text[start:end].rstrip(_CLOSERS)
    following = text[end:].lstrip()
    if not following:
        return True
    first = following.lstrip(_OPENERS)[:1]
    if first.islower():
        return False
    if mark != "." or text[start:end] != mark:
        # "!", "?", "..." or a period followed by a closing quote: the quote shows the sentence ended.
        return True
    match = _WORD_BEFORE.search(text, 0, start + 1)
    word = match.group(1).rstrip(".") if match else ""
    if word.lower() in _TITLES:
        return False
    # Initials ("T. S. Eliot") and initialisms ("U.S.A."): a single capital letter before the period.
    last = word.rsplit(".", 1)[-1]
    return not (len(last) == 1 and last.isupper() and last != "I")


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph, in order, with their punctuation."""
    text = text.strip()
    if not text:
        return []
    if is_chinese(text):
        return _split_chinese(text)
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if _ends_sentence(text, match.start(), match.end()):
            sentences.append(text[start : match.end()].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    return _attach_unspeakable(sentences)


def _split_chinese(text: str) -> list[str]:
    """Chinese breaks at 。！？；… whether or not a space follows; a closing quote stays with its sentence."""
    sentences: list[str] = []
    start = 0
    for match in _ZH_BOUNDARY.finditer(text):
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return _attach_unspeakable(sentences)


def _attach_unspeakable(sentences: list[str]) -> list[str]:
    """A closing quote left on its own (as in .' ") stays with the sentence it closes."""
    out: list[str] = []
    for sentence in sentences:
        if not sentence:
            continue
        if out and not any(ch.isalnum() for ch in sentence):
            out[-1] += " " + sentence
        else:
            out.append(sentence)
    return out


def _split_keeping_blocks(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Split after each match of ``pattern`` outside ``[[ ... ]]`` blocks."""
    blocks = [(m.start(), m.end()) for m in _PHONEME_BLOCK.finditer(text)]
    pieces: list[str] = []
    start = 0
    for match in pattern.finditer(text):
        if any(a <= match.start() < b for a, b in blocks):
            continue
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])
    return [p for p in pieces if p.strip()]


def split_clauses(text: str) -> list[str]:
    """Pieces ending at commas, semicolons and colons (ASCII or Chinese full-width), spacing kept."""
    return _split_keeping_blocks(text, _CLAUSE)


def split_words(text: str) -> list[str]:
    """Words with their trailing space; a phoneme block and what is glued to it stay one word."""
    return _TOKEN.findall(text)


def split_characters(text: str, size: int) -> list[str]:
    """Last resort for text with no spaces at all: fixed runs of characters, blocks kept whole."""
    pieces: list[str] = []
    position = 0
    for match in _PHONEME_BLOCK.finditer(text):
        pieces.extend(text[i : min(i + size, match.start())] for i in range(position, match.start(), size))
        pieces.append(match.group(0))
        position = match.end()
    pieces.extend(text[i : i + size] for i in range(position, len(text), size))
    return [p for p in pieces if p]
