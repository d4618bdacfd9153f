"""Cast files: which voice reads the narration, the dialogue, each character and each language.

A cast file is TOML::

    narrator = "narrator"          # voices (`voxfarm voices`): Piper presets or Qwen3-TTS voices
    dialogue = "dialogue"          # quotations whose speaker is not known (default: the narrator)
    min_confidence = 0.5           # attributions below this go to the dialogue voice

    [characters]
    Holmes = "holmes"
    "Dr. Watson" = "watson"

    [languages]
    zh = "huayan"                  # passages in Chinese, whoever speaks them

Every voice it names is resolved before anything is planned or queued, so a
typo, a missing model or a missing Qwen3-TTS checkpoint fails at once (exit
2) with the name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from producer.cast_qwen import QwenCastVoice, mapped_language
from producer.qwen_voices import QwenVoiceLookup
from shared.errors import BadInputError, NotFoundError, UnknownVoiceError
from shared.frontend.dialogue import Span
from shared.presets import LANGUAGE_PATTERN, PresetRegistry, PresetVoice
from shared.voices import DEFAULT_VOICE

CastVoice: TypeAlias = PresetVoice | QwenCastVoice
"""A Piper preset (or plain Piper voice) or a Qwen3-TTS voice."""

QwenFinder: TypeAlias = Callable[[str], QwenVoiceLookup | None]
"""Finds a Qwen3-TTS voice by name with its checkpoint's tokenizer files; None when it is not one."""


class CastFile(BaseModel):
    """The cast file's contents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    narrator: str = DEFAULT_VOICE
    dialogue: str | None = None
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    characters: dict[str, str] = Field(default_factory=dict)
    languages: dict[str, str] = Field(default_factory=dict)


def read_cast_file(path: Path) -> CastFile:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such cast file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInputError(f"{path}: not a TOML cast file: {exc}") from exc
    try:
        cast = CastFile.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "cast"
        raise BadInputError(f"{path}: {where}: {first['msg']}") from exc
    for language in cast.languages:
        if not __import__("re").match(LANGUAGE_PATTERN, language):
            raise BadInputError(f"{path}: languages: {language!r} is not an ISO 639 code such as en or zh")
    return cast


@dataclass(frozen=True)
class Choice:
    """The voice chosen for a span, and what could not be honoured."""

    voice: CastVoice
    unspoken: str | None = None
    """The passage's language, when the chosen voice does not speak it and the cast maps no voice to it."""


@dataclass
class Cast:
    """A cast file with every voice it names resolved."""

    file: CastFile
    voices: dict[str, CastVoice]
    presets: PresetRegistry
    find_qwen: QwenFinder | None = None
    language: str | None = None
    """The book's language, once known (``for_book``): what Qwen3-TTS voices are told they read."""

    @classmethod
    def load(
        cls, file: CastFile, presets: PresetRegistry, where: str = "cast", find_qwen: QwenFinder | None = None
    ) -> Cast:
        cast = cls(file, {}, presets, find_qwen)
        named = [("narrator", file.narrator)]
        named += [("dialogue", file.dialogue)] if file.dialogue else []
        named += [(f"character {who!r}", v) for who, v in file.characters.items()]
        named += [(f"language {code}", v) for code, v in file.languages.items()]
        for role, name in named:
            if name in cast.voices:
                continue
            try:
                cast.voices[name] = cast.resolve(name)
            except (UnknownVoiceError, BadInputError) as exc:
                raise UnknownVoiceError(f"{where}: {role} voice {name!r}: {exc}") from None
        return cast

    def resolve(self, name: str) -> CastVoice:
        """A Piper preset or voice, else a Qwen3-TTS voice (its checkpoint checked), else an unknown voice."""
        if self.presets.find(name) is None and self.find_qwen is not None:
            lookup = self.find_qwen(name)
            if lookup is not None:
                return QwenCastVoice.of(name, lookup, mapped_language(name, self.file.languages) or self.language)
        return self.presets.resolve(name)

    def for_book(self, language: str | None) -> Cast:
        """Qwen3-TTS voices told the book's language (unless their file or the cast's languages say another)."""
        voices: dict[str, CastVoice] = {
            name: voice.for_language(mapped_language(name, self.file.languages) or language)
            if isinstance(voice, QwenCastVoice)
            else voice
            for name, voice in self.voices.items()
        }
        return replace(self, voices=voices, language=language)

    def check_engine(self, engine: str) -> None:
        """Refuse, before anything is queued, a job engine the cast's Piper voices cannot run on."""
        if engine not in ("piper-onnx", "piper-torch"):
            raise BadInputError(
                f"the Piper voices of a cast run on piper-onnx or piper-torch, not {engine} "
                "(its Qwen3-TTS voices run on qwen3-tts by themselves)"
            )

    @property
    def narrator(self) -> CastVoice:
        return self.voices[self.file.narrator]

    @property
    def dialogue(self) -> CastVoice:
        return self.voices[self.file.dialogue or self.file.narrator]

    def character_voice(self, speaker: str) -> CastVoice | None:
        wanted = speaker.casefold()
        for name, voice in self.file.characters.items():
            if name.casefold() == wanted:
                return self.voices[voice]
        return None

    def choose(self, span: Span, language: str | None) -> Choice:
        """Narration to the narrator; an attributed quotation to its character; else the dialogue voice."""
        voice = self.narrator if span.kind == "narration" else self.dialogue
        if span.kind == "quote" and span.speaker and (span.explicit or span.confidence >= self.file.min_confidence):
            voice = (
                self.character_voice(span.speaker) or (self._named(span.speaker) if span.explicit else None) or voice
            )
        if voice.speaks(language):
            return Choice(voice)
        mapped = self.file.languages.get(language or "")
        if mapped is not None:
            return Choice(self.voices[mapped])
        return Choice(voice, unspoken=language)

    def _named(self, name: str) -> CastVoice | None:
        """Markup may name a voice itself rather than a character."""
        if name in self.voices:
            return self.voices[name]
        try:
            self.voices[name] = self.resolve(name)
        except (UnknownVoiceError, BadInputError):
            return None
        return self.voices[name]


def single_voice_cast(voice: str, presets: PresetRegistry) -> Cast:
    """A preset used as ``--voice``: a cast of one voice, so the preset's settings and name are kept."""
    return Cast.load(CastFile(narrator=voice), presets, where="--voice")
