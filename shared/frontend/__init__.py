"""Text frontend: paragraphs in, segments (normalised text + engine token ids) out.

The frontend runs on the control plane, before anything is queued: a
segment's text and ids go into its content key and its length picks the
bucket queue, so workers do only accelerator work. One segment is one
sentence (or one piece of an over-long sentence) and becomes one audio clip.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import BadInputError
from shared.frontend.lexicon import Lexicon
from shared.frontend.normalize import has_speakable, normalize
from shared.frontend.sentences import split_characters, split_clauses, split_sentences, split_words

__all__ = ["Frontend", "FrontendSegment", "Lexicon", "create_frontend"]


FIT_SAFETY = 0.85
"""Fraction of max_tokens a split piece aims at, since tokens per character vary along a sentence."""


def attach_unspeakable(pieces: Sequence[str]) -> list[str]:
    """A piece with nothing to say (a lone quote or bracket) joins its neighbour instead of being lost."""
    merged: list[str] = []
    for piece in pieces:
        if merged and not (has_speakable(piece) and has_speakable(merged[-1])):
            merged[-1] += piece
        else:
            merged.append(piece)
    return merged


def pack_pieces(pieces: Sequence[str], budget: int) -> list[str]:
    """Consecutive pieces joined greedily while they stay within ``budget`` characters."""
    groups: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) > budget:
            groups.append(current)
            current = ""
        current += piece
    if current:
        groups.append(current)
    return groups


@dataclass(frozen=True)
class FrontendSegment:
    """One clip's worth of text: what is read, the engine's token ids, and where a paragraph ends."""

    text: str
    ids: list[int]
    paragraph_end: bool


class Frontend(ABC):
    """Turns paragraphs into segments that each fit ``max_tokens``."""

    name: str = ""

    def __init__(self, *, max_tokens: int, lexicon: Lexicon | None = None, language: str | None = None) -> None:
        if max_tokens < 16:
            raise BadInputError(f"max_tokens {max_tokens} is too small: use at least 16 (the default is 512)")
        self.max_tokens = max_tokens
        self.lexicon = lexicon
        self.language = language

    def segment_paragraph(self, paragraph: str) -> list[FrontendSegment]:
        """Normalise, split into sentences, apply the lexicon, tokenise; the last segment ends the paragraph."""
        text = normalize(paragraph, self.language)
        if not has_speakable(text):
            return []
        pieces: list[tuple[str, list[int]]] = []
        for sentence in split_sentences(text):
            pieces.extend(self.fit(self.lexicon.apply(sentence) if self.lexicon else sentence))
        return [
            FrontendSegment(text=piece, ids=ids, paragraph_end=index == len(pieces) - 1)
            for index, (piece, ids) in enumerate(pieces)
        ]

    def segment_chapter(self, paragraphs: Sequence[str]) -> list[FrontendSegment]:
        """All segments of a chapter, in reading order."""
        segments: list[FrontendSegment] = []
        for paragraph in paragraphs:
            segments.extend(self.segment_paragraph(paragraph))
        return segments

    @abstractmethod
    def ids(self, text: str) -> list[int]:
        """The engine's token ids for one normalised piece of text."""

    def truncate(self, ids: list[int]) -> list[int]:
        """The last resort when even one character is too long: cut to max_tokens."""
        return ids[: self.max_tokens]

    def fit(self, text: str) -> list[tuple[str, list[int]]]:
        """The text as pieces that each fit max_tokens: whole, else clauses, else words, else characters."""
        text = text.strip()
        if not has_speakable(text):
            return []
        ids = self.ids(text)
        if len(ids) <= self.max_tokens:
            return [(text, ids)]
        # Characters per piece that should stay under the limit, with room for the estimate being off.
        budget = max(1, int(self.max_tokens * FIT_SAFETY * len(text) / len(ids)))
        splitters: Sequence[Callable[[str], list[str]]] = (
            split_clauses,
            split_words,
            lambda t: split_characters(t, budget),
        )
        for split in splitters:
            pieces = attach_unspeakable(split(text))
            if len(pieces) > 1:
                break
        else:
            return [(text, self.truncate(ids))]
        return [fitted for group in pack_pieces(pieces, budget) for fitted in self.fit(group)]

    def plain_sentences(self, paragraphs: Sequence[str]) -> list[str]:
        """Normalised sentences without tokenising: a cheap count for plans and estimates."""
        return [s for p in paragraphs for s in split_sentences(normalize(p, self.language))]


def create_frontend(
    kind: str, voice_config: dict[str, Any], *, max_tokens: int, lexicon: Lexicon | None = None
) -> Frontend:
    """The frontend an engine needs, built from its voice's config; ``kind`` comes from the engine spec."""
    if kind == "piper":
        from shared.frontend.piper import PiperFrontend

        return PiperFrontend(voice_config, max_tokens=max_tokens, lexicon=lexicon)
    if kind == "qwen3":
        from shared.frontend.qwen3 import Qwen3Frontend

        return Qwen3Frontend(voice_config, max_tokens=max_tokens, lexicon=lexicon)
    raise BadInputError(f"unknown frontend {kind!r}; this installation has: piper, qwen3")
