"""A Qwen3-TTS voice (preset speaker, design or clone) as one voice of a cast.

The voice is the same voice file `voxfarm voices add NAME --model ...`
stores; in a cast its segments carry the ``qwen3-tts`` engine and the
voice's conditioning, so they route to the queues of its checkpoint while
the Piper voices of the same chapter route to theirs. They are keyed and
stored exactly as a one-voice job of that voice keys and stores them
(``segments/<voice>/``), so either reuses the other's audio.

Which language the voice is told it reads: the voice file's own, else the
language the cast maps it to (``[languages] zh = "NAME"``, when it maps it
to one), else the book's, as with ``--voice``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from producer.qwen_voices import QwenVoiceLookup
from shared.buckets import model_name
from shared.qwen import ENGINE, qwen_language
from shared.qwen.voices import ResolvedVoice
from shared.schema import SynthesisParams, VoiceConditioning

_CODES = {"chinese": "zh", "english": "en", "japanese": "ja", "korean": "ko", "german": "de", "french": "fr"}
_CODES |= {"russian": "ru", "portuguese": "pt", "spanish": "es", "italian": "it"}


@dataclass(frozen=True)
class QwenCastVoice:
    """The planner's view of a Qwen3-TTS voice, as ``PresetVoice`` is of a Piper one."""

    name: str
    lookup: QwenVoiceLookup
    resolved: ResolvedVoice
    params: SynthesisParams = field(default_factory=SynthesisParams)
    """Piper's settings do not apply: Qwen3-TTS samples with its checkpoint's own (the key records the default)."""
    engine: str = ENGINE
    preset: None = None

    @classmethod
    def of(cls, name: str, lookup: QwenVoiceLookup, language: str | None = None) -> QwenCastVoice:
        return cls(name, lookup, lookup.resolve(language))

    def for_language(self, language: str | None) -> QwenCastVoice:
        """The voice resolved against a book's (or a mapped) language; a voice file's own language stays."""
        return replace(self, resolved=self.lookup.resolve(language))

    @property
    def model(self) -> str:
        """What a message names and the segments' folder: the voice itself, as in a one-voice job."""
        return self.name

    @property
    def checkpoint(self) -> str:
        return self.lookup.model.name

    @property
    def sample_rate(self) -> int:
        return self.resolved.sample_rate

    @property
    def checksum(self) -> str:
        return self.resolved.checksum

    @property
    def config(self) -> dict[str, Any]:
        """What the qwen3 frontend needs: the checkpoint's tokenizer and the text's language."""
        return self.resolved.config

    @property
    def languages(self) -> tuple[str, ...]:
        """ISO codes: the language it is told it reads, or every language of its checkpoint on 'auto'."""
        told = self.resolved.language
        names = self.lookup.model.languages if told == "auto" else [told]
        return tuple(sorted({_CODES[n] for n in names if n in _CODES}))

    def speaks(self, language: str | None) -> bool:
        return language is None or not self.languages or language in self.languages

    @property
    def conditioning(self) -> VoiceConditioning:
        return self.resolved.conditioning()

    @property
    def key_document(self) -> Mapping[str, Any]:
        return self.resolved.key_document(self.conditioning)

    def chapter_conditioning(self, instruct: str | None) -> VoiceConditioning:
        """The voicing in a chapter with its own instruction (a book sidecar's), as a one-voice job voices it."""
        return self.resolved.conditioning(instruct)

    def queue_model(self, job_engine: str) -> str:
        """Every voice of a checkpoint shares its queues, whatever engine the cast's Piper voices use."""
        return model_name(ENGINE, self.checkpoint)


def mapped_language(name: str, languages: Mapping[str, str]) -> str | None:
    """The one language a cast maps this voice to, if it maps it to exactly one."""
    codes = [code for code, voice in languages.items() if voice == name]
    return codes[0] if len(codes) == 1 and qwen_language(codes[0]) != "auto" else None
