"""Subtitles per chapter (SubRip and WebVTT) from segment timings.

Each segment is spoken from a known offset in its chapter file; its cue
shows the segment's normalised text while its speech plays (the silence the
voice leaves before and after the words is trimmed off). A long sentence is
cut into cues of at most two lines of 42 characters, at word boundaries,
and its time shared out in proportion to the characters of each cue.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LINE_CHARS = 42
CUE_LINES = 2
MIN_CUE_S = 0.5


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str
    """Lines joined by newlines."""


@dataclass(frozen=True)
class TimedText:
    """One segment's text and when its speech starts and ends in the chapter file."""

    start_s: float
    end_s: float
    text: str
    speaker: str | None = None
    """Who speaks it (a quotation attributed to a character), for subtitles that name the speaker."""


def _wrap(words: Sequence[str], width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines


def _balanced(text: str) -> str:
    """Two lines of similar length when the text needs two, else one."""
    if len(text) <= LINE_CHARS:
        return text
    words = text.split(" ")
    best, best_cost = text, len(text)
    for cut in range(1, len(words)):
        first, second = " ".join(words[:cut]), " ".join(words[cut:])
        cost = max(len(first), len(second))
        if cost < best_cost:
            best, best_cost = f"{first}\n{second}", cost
    return best


def split_text(text: str) -> list[str]:
    """Pieces of at most two lines each, cut at word boundaries, each piece balanced over its lines."""
    words = " ".join(text.split()).split(" ")
    if words == [""]:
        return []
    lines = _wrap(words, LINE_CHARS)
    pieces = [" ".join(lines[i : i + CUE_LINES]) for i in range(0, len(lines), CUE_LINES)]
    return [_balanced(piece) for piece in pieces]


def cues(segments: Iterable[TimedText], *, speakers: bool = False) -> list[Cue]:
    """Cues for segments in chapter order; a segment's time is shared among its pieces by length.

    With ``speakers``, a segment whose speaker is known opens its first cue with the name ("HOLMES: ...").
    """
    out: list[Cue] = []
    for segment in segments:
        text = f"{segment.speaker.upper()}: {segment.text}" if speakers and segment.speaker else segment.text
        pieces = split_text(text)
        if not pieces or segment.end_s <= segment.start_s:
            continue
        total = sum(len(p) for p in pieces)
        start = segment.start_s
        span = segment.end_s - segment.start_s
        for position, piece in enumerate(pieces):
            end = segment.end_s if position == len(pieces) - 1 else start + span * len(piece) / total
            out.append(Cue(start, end, piece))
            start = end
    # A very short cue (a one-word line) stays up a little longer, but never past the next one.
    result: list[Cue] = []
    for position, cue in enumerate(out):
        limit = out[position + 1].start_s if position + 1 < len(out) else cue.end_s + MIN_CUE_S
        end = min(max(cue.end_s, cue.start_s + MIN_CUE_S), max(limit, cue.end_s))
        result.append(Cue(cue.start_s, end, cue.text))
    return result


def _stamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _safe(text: str) -> str:
    # "-->" would end a timing line, a blank line would end the cue.
    return "\n".join(line.replace("-->", "->") for line in text.splitlines() if line.strip())


def to_srt(items: Sequence[Cue]) -> str:
    blocks = [
        f"{number}\n{_stamp(cue.start_s, ',')} --> {_stamp(cue.end_s, ',')}\n{_safe(cue.text)}\n"
        for number, cue in enumerate(items, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(items: Sequence[Cue]) -> str:
    blocks = [
        f"{_stamp(cue.start_s, '.')} --> {_stamp(cue.end_s, '.')}\n{html.escape(_safe(cue.text), quote=False)}\n"
        for cue in items
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)
