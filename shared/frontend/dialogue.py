"""Narration and quotation: where a paragraph's quotations are, before normalisation folds the quotes.

Runs on the raw paragraph text, because normalisation turns every curly
quote into a straight one and then an apostrophe can no longer be told from
a closing single quote. A quotation keeps its marks (espeak reads none of
them); nested quotations belong to the outer one (the speaker quoting
someone is still the speaker). A quotation left open at the end of a
paragraph continues into the next paragraph when that one opens with a quote
mark again, the English convention for a speech of several paragraphs.
Explicit markup wins: ingestion wraps text whose voice the source names
(``data-voice``) in ``VOICE_OPEN name VOICE_SEP text VOICE_CLOSE``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from shared.frontend.attribution import (
    SUBJECT_CONFIDENCE,
    Attribution,
    attribute_after,
    attribute_before,
    script_label,
    subject_before,
)
from shared.frontend.normalize import has_speakable

VOICE_OPEN = "\ue000"
VOICE_SEP = "\ue001"
VOICE_CLOSE = "\ue002"
_MARKED = re.compile(f"{VOICE_OPEN}([^{VOICE_SEP}]*){VOICE_SEP}(.*?){VOICE_CLOSE}", re.S)

_DOUBLE_OPENERS = {"“": "”", "«": "»", "„": "“", '"': '"', "「": "」", "『": "』"}
_SINGLE_OPENERS = {"‘": "’", "'": "'"}
_NESTED = {"“": "”", "‘": "’", "『": "』", "「": "」", "«": "»"}
_DASH_LINE = re.compile(r"^\s*(?:[—―]|–\s|--\s?)\s*")

Kind = Literal["narration", "quote"]


@dataclass(frozen=True)
class Span:
    """A run of a paragraph read by one voice: narration, or a quotation and who speaks it."""

    text: str
    kind: Kind
    speaker: str | None = None
    confidence: float = 0.0
    explicit: bool = False
    """The source's markup named the voice (``data-voice``, a JSONL ``voice``)."""


_MARK_CHARS = dict.fromkeys(map(ord, VOICE_OPEN + VOICE_SEP + VOICE_CLOSE))
MAX_VOICE_NAME = 80


def voice_mark(name: str, text: str) -> str:
    """``text`` marked as read by ``name`` (a character or a voice), as ingestion writes markup down."""
    name = " ".join(name.translate(_MARK_CHARS).split())[:MAX_VOICE_NAME]
    return f"{VOICE_OPEN}{name}{VOICE_SEP}{text}{VOICE_CLOSE}" if name else text


def remove_mark_characters(text: str) -> str:
    """The source's own text never carries the marker characters: only ingestion writes them."""
    return text.translate(_MARK_CHARS)


def strip_voice_marks(text: str) -> str:
    """The text without voice markup, for planning that does not cast voices."""
    if VOICE_OPEN not in text:
        return text
    return remove_mark_characters(_MARKED.sub(lambda m: m.group(2), text))


def _is_word(char: str) -> bool:
    return char.isalnum()


def _single_opens(text: str, i: int) -> bool:
    """A single quote that opens: at the start or after a space, dash or opener, and before a word."""
    before = text[i - 1] if i > 0 else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    return (before.isspace() or before in '—–-([“"«') and not after.isspace()


def _single_closes(text: str, i: int) -> bool:
    """A single quote that closes: not inside a word (don’t, o’clock) and not before a word."""
    before = text[i - 1] if i > 0 else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    return not before.isspace() and not _is_word(after)


def _possessive(text: str, i: int) -> bool:
    """The boys’ names: a plural possessive, when the quotation still closes later on."""
    after = text[i + 1] if i + 1 < len(text) else ""
    return text[i - 1 : i] == "s" and after == " " and _closer_after(text, i, text[i])


def _closer_after(text: str, i: int, closer: str) -> bool:
    return any(text[j] == closer and _single_closes(text, j) for j in range(i + 1, len(text)))


def quote_regions(text: str, *, continues: bool = False) -> tuple[list[tuple[int, int]], bool]:
    """(start, end) of each top-level quotation, and whether the last one is still open at the end."""
    regions: list[tuple[int, int]] = []
    stack: list[str] = []
    start = 0
    for i, char in enumerate(text):
        if not stack:
            if char in _DOUBLE_OPENERS or (
                char in _SINGLE_OPENERS
                and _single_opens(text, i)
                and (_closer_after(text, i, _SINGLE_OPENERS[char]) or (continues or not text[:i].strip()))
            ):
                stack.append(char)
                start = i
            continue
        top = stack[-1]
        closer = _DOUBLE_OPENERS.get(top) or _SINGLE_OPENERS.get(top) or _NESTED.get(top)
        if char == closer and (top not in _SINGLE_OPENERS or (_single_closes(text, i) and not _possessive(text, i))):
            stack.pop()
            if not stack:
                regions.append((start, i + 1))
            continue
        # Nested quotations: only marks that cannot be apostrophes, and never a straight quote.
        if char in _NESTED and char != closer and char not in ("«",):
            if char == "‘" and not _closer_after(text, i, "’"):
                continue
            stack.append(char)
    if stack:
        regions.append((start, len(text)))
    return regions, bool(stack)


def _dash_spans(text: str) -> list[Span] | None:
    """Em-dash dialogue: ``— Holmes: text`` (a labelled line) or ``—Text, — said he.``"""
    match = _DASH_LINE.match(text)
    if not match:
        return None
    rest = text[match.end() :]
    label = script_label(rest)
    if label is not None:
        name, body = label
        return [Span(text[: len(text) - len(body)].strip(), "narration"), Span(body.strip(), "quote", name, 0.95)]
    parts = re.split(r"\s*[—―]\s*", rest, maxsplit=1)
    spoken, narration = parts[0], parts[1] if len(parts) > 1 else ""
    spans = [Span(spoken.strip(), "quote")]
    if narration.strip():
        spans.append(Span(narration.strip(), "narration"))
    return spans


def _explicit(text: str) -> list[Span] | None:
    if VOICE_OPEN not in text:
        return None
    spans: list[Span] = []
    position = 0
    for match in _MARKED.finditer(text):
        spans.extend(split_quotes(text[position : match.start()]))
        spans.append(Span(match.group(2).strip(), "quote", match.group(1).strip() or None, 1.0, explicit=True))
        position = match.end()
    spans.extend(split_quotes(text[position:]))
    return spans


def split_quotes(text: str, *, continues: bool = False) -> list[Span]:
    """The paragraph as narration and quotation spans, without attribution."""
    regions, _ = quote_regions(text, continues=continues)
    spans: list[Span] = []
    position = 0
    for start, end in regions:
        spans.append(Span(text[position:start].strip(), "narration"))
        spans.append(Span(text[start:end].strip(), "quote"))
        position = end
    spans.append(Span(text[position:].strip(), "narration"))
    return [span for span in spans if has_speakable(span.text)]


def _attribute(spans: list[Span]) -> list[Span]:
    """Name the speaker of each quotation from the narration around it; one speaker per paragraph."""
    found: list[Attribution | None] = [None] * len(spans)
    for i, span in enumerate(spans):
        if span.kind != "quote" or span.speaker:
            continue
        after = spans[i + 1].text if i + 1 < len(spans) and spans[i + 1].kind == "narration" else ""
        before = spans[i - 1].text if i > 0 and spans[i - 1].kind == "narration" else ""
        found[i] = attribute_after(after) or attribute_before(before)
    named = [a for a in found if a is not None]
    paragraph_speaker = named[0] if named and all(a.speaker == named[0].speaker for a in named) else None
    out: list[Span] = []
    for span, attribution in zip(spans, found, strict=True):
        chosen = attribution
        if chosen is None and paragraph_speaker is not None:
            chosen = Attribution(paragraph_speaker.speaker, 0.8 * paragraph_speaker.confidence)
        if span.kind == "quote" and not span.speaker and chosen is not None:
            out.append(replace(span, speaker=chosen.speaker, confidence=chosen.confidence))
        else:
            out.append(span)
    return out


def mark_dialogue(paragraphs: Sequence[str]) -> list[list[Span]]:
    """Spans of every paragraph of a chapter, quotations attributed where the text says who speaks."""
    marked: list[list[Span]] = []
    speech: list[tuple[int, int]] = []
    """(paragraph, span) of each part of a quotation still open at the last paragraph's end."""
    for number, paragraph in enumerate(paragraphs):
        spans = _explicit(paragraph) or _dash_spans(paragraph)
        still_open = continues = False
        if spans is None:
            continues = bool(speech) and paragraph.lstrip()[:1] in (*_DOUBLE_OPENERS, *_SINGLE_OPENERS)
            spans = _attribute(split_quotes(paragraph, continues=continues))
            _, still_open = quote_regions(paragraph, continues=continues)
        else:
            spans = _attribute([s for s in spans if has_speakable(s.text)])
        marked.append(spans)
        chain = [*speech, (number, 0)] if continues and spans and spans[0].kind == "quote" else []
        _share_speaker(marked, chain)
        if still_open and spans and spans[-1].kind == "quote":
            speech = chain if chain and len(spans) == 1 else [(number, len(spans) - 1)]
        else:
            speech = []
    return _by_subject(marked)


def _by_subject(marked: list[list[Span]]) -> list[list[Span]]:
    """A quotation after "Holmes smiled." is Holmes's, when Holmes speaks elsewhere in the chapter."""
    speakers = {s.speaker.casefold() for spans in marked for s in spans if s.speaker and s.confidence >= 0.85}
    for spans in marked:
        for i, span in enumerate(spans):
            if span.kind == "quote" and not span.speaker and i > 0 and spans[i - 1].kind == "narration":
                subject = subject_before(spans[i - 1].text)
                if subject and subject.casefold() in speakers:
                    spans[i] = replace(span, speaker=subject, confidence=SUBJECT_CONFIDENCE)
    return marked


def _share_speaker(marked: list[list[Span]], speech: list[tuple[int, int]]) -> None:
    """The paragraphs of one long quotation have one speaker: whichever of them names it."""
    named = [marked[p][s] for p, s in speech if marked[p][s].speaker]
    if not named:
        return
    best = max(named, key=lambda span: span.confidence)
    for p, s in speech:
        if not marked[p][s].speaker:
            marked[p][s] = replace(marked[p][s], speaker=best.speaker, confidence=best.confidence)
