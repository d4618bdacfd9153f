"""Which languages a one-voice job's passages are in, and which of them its voice does not speak.

A Chinese passage read by an English Piper voice comes out as Chinese
phonemes through an English speaker: planning says so (in `plan`, `render`
and the manifest) instead of rendering it without a word.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.frontend import Frontend, FrontendSegment
from shared.presets import model_languages, passage_language, unspoken_note
from shared.qwen.voices import ResolvedVoice
from shared.voices import VoiceFiles


@dataclass
class LanguageCheck:
    voice: VoiceFiles | ResolvedVoice
    book_language: str | None
    unspoken: Counter[str] = field(default_factory=Counter)

    @property
    def languages(self) -> tuple[str, ...]:
        """What the voice speaks; a Qwen3-TTS voice is checked against its checkpoint when it is resolved."""
        return () if isinstance(self.voice, ResolvedVoice) else model_languages(self.voice.config)

    def segment_chapter(self, frontend: Frontend, paragraphs: Sequence[str]) -> list[FrontendSegment]:
        """The frontend's segments of the chapter, unchanged, counting those in a language the voice lacks."""
        spoken = self.languages
        segments: list[FrontendSegment] = []
        for paragraph in paragraphs:
            pieces = frontend.segment_paragraph(paragraph)
            language = passage_language(paragraph, self.book_language) if spoken else None
            if language and language not in spoken:
                self.unspoken[language] += len(pieces)
            segments.extend(pieces)
        return segments

    def notes(self) -> list[str]:
        return [unspoken_note(lang, {self.voice.id: n}, n) for lang, n in sorted(self.unspoken.items())]
