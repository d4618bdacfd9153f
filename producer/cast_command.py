"""`voxfarm cast BOOK`: the characters a book's dialogue names, and a starting cast file.

Also where a submission's cast is loaded (``--cast FILE``, or a preset given
as ``--voice``; ``producer/request.py``): every voice is resolved there,
before anything is planned or queued.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from producer.cast import Cast, CastFile, CastVoice, read_cast_file, single_voice_cast
from producer.cast_qwen import QwenCastVoice
from producer.console import print_json
from shared.errors import BadInputError, ConfigError, StorageError
from shared.frontend.dialogue import mark_dialogue
from shared.presets import PresetRegistry
from shared.settings import Settings
from shared.storage import Storage
from shared.voices import VoiceRegistry

SAMPLE_CHARS = 80


def presets_for(settings: Settings, storage: Storage | None) -> PresetRegistry:
    from producer.qwen_voices import optional_storage

    # Without configured storage, presets live where `voxfarm voices add` and the local farm keep them.
    opened = optional_storage(settings, storage) or Storage.from_settings(settings)
    return PresetRegistry(VoiceRegistry(settings.voices_dir, opened, settings.effective_cache_dir))


def cast_file_of(path: Path | None, voice: str | None) -> CastFile | None:
    """The cast file ``--cast`` names, its narrator replaced by ``--voice`` when both are given."""
    if path is None:
        return None
    file = read_cast_file(path)
    return file.model_copy(update={"narrator": voice}) if voice else file


def cast_of(
    file: CastFile | None, where: str, voice: str, engine: str | None, *, settings: Settings, storage: Storage | None
) -> Cast | None:
    """A cast file's cast, else the cast of one preset named as the voice; None for a plain voice."""
    from producer.qwen_voices import find_qwen_voice

    if file is not None:
        presets = presets_for(settings, storage)
        return Cast.load(
            file,
            presets,
            where=where,
            find_qwen=lambda name: find_qwen_voice(name, None, settings, presets.storage),
        )
    if engine not in (None, "piper-onnx", "piper-torch"):
        return None
    try:
        presets = presets_for(settings, storage)
        found = presets.find(voice)
    except (StorageError, ConfigError):
        return None  # only looking: a plain Piper voice stays plannable when storage is unreachable
    return single_voice_cast(voice, presets) if found is not None else None


def with_overrides(cast: Cast | None, overrides: dict[str, float | None]) -> Cast | None:
    """Command-line synthesis settings (``--length-scale``...) apply to every voice of the cast."""
    wanted = {k: v for k, v in overrides.items() if v is not None}
    if cast is None or not wanted:
        return cast
    voices: dict[str, CastVoice] = {}
    for name, voice in cast.voices.items():
        if isinstance(voice, QwenCastVoice):
            voices[name] = voice  # Piper's settings; a Qwen3-TTS voice samples with its checkpoint's own
            continue
        params = type(voice.params).model_validate({**voice.params.model_dump(), **wanted})
        voices[name] = replace(voice, params=params)
    return replace(cast, voices=voices)


@dataclass
class Character:
    name: str
    lines: int = 0
    sample: str = ""
    confidence: float = 0.0


@dataclass
class Census:
    """What `voxfarm cast` found in a book."""

    narration: int = 0
    quotations: int = 0
    unattributed: int = 0
    characters: dict[str, Character] = field(default_factory=dict)

    def add_chapter(self, paragraphs: list[str], min_confidence: float) -> None:
        for spans in mark_dialogue(paragraphs):
            for span in spans:
                if span.kind == "narration":
                    self.narration += 1
                    continue
                self.quotations += 1
                if not span.speaker or span.confidence < min_confidence:
                    self.unattributed += 1
                    continue
                known = self.characters.setdefault(span.speaker.casefold(), Character(span.speaker))
                known.lines += 1
                known.confidence = max(known.confidence, span.confidence)
                if not known.sample:
                    known.sample = span.text[:SAMPLE_CHARS] + ("…" if len(span.text) > SAMPLE_CHARS else "")

    def ranked(self) -> list[Character]:
        return sorted(self.characters.values(), key=lambda c: (-c.lines, c.name))


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def starting_cast(census: Census, narrator: str) -> str:
    """A cast file that loads as written: every character read by the narrator's voice until edited."""
    lines = [
        "# voxfarm cast file: map each role to a voice (`voxfarm voices`; add one with `voxfarm voices add`).",
        f"narrator = {_toml_string(narrator)}",
        f"dialogue = {_toml_string(narrator)}   # quotations whose speaker is not known",
        "min_confidence = 0.5",
        "",
        "[characters]",
    ]
    for character in census.ranked():
        sample = character.sample.replace("\n", " ")
        lines.append(f"{_toml_string(character.name)} = {_toml_string(narrator)}   # {character.lines} lines: {sample}")
    lines += ["", "[languages]", '# zh = "VOICE"   # passages in this language, whoever speaks them', ""]
    return "\n".join(lines)


def cast_book(args: argparse.Namespace, settings: Settings) -> int:
    from producer.ingest import load_book, select_chapters

    book = load_book(args.book, include_matter=args.include_matter, max_bytes=settings.max_source_bytes)
    if args.chapters is not None:
        book = replace(book, chapters=select_chapters(book.chapters, args.chapters))
    census = Census()
    for chapter in book.chapters:
        census.add_chapter(list(chapter.paragraphs), args.min_confidence)
    target: Path = args.output or Path(f"{args.book.stem}.cast.toml")
    written: str | None = None
    if not args.no_write:
        if target.exists() and not args.force:
            raise BadInputError(f"{target} exists; edit it, or write over it with --force")
        target.write_text(starting_cast(census, args.voice or settings.voice), encoding="utf-8")
        written = str(target)
    if args.json:
        print_json(census_document(census, book.title, written))
        return 0
    print(f"{book.title}: {census.quotations} quotations, {census.unattributed} without a known speaker")
    for character in census.ranked():
        print(f"  {character.name[:30]:30s} {character.lines:5d} lines  {character.sample}")
    if written:
        print(f"cast file written to {written}; edit it, then: voxfarm render {args.book} --cast {written} -o DIR")
    return 0


def census_document(census: Census, title: str, cast_file: str | None) -> dict[str, Any]:
    """What `voxfarm cast --json` prints (contract: cast.schema.json)."""
    return {
        "title": title,
        "narration_spans": census.narration,
        "quotations": census.quotations,
        "unattributed": census.unattributed,
        "characters": [
            {"name": c.name, "lines": c.lines, "sample": c.sample, "confidence": round(c.confidence, 2)}
            for c in census.ranked()
        ],
        "cast_file": cast_file,
    }


def add_cast_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cast = sub.add_parser("cast", help="list the characters of a book's dialogue and write a starting cast file")
    cast.add_argument("book", type=Path)
    cast.add_argument("--voice", help="the narrator's voice in the written cast file (default: VOXFARM_VOICE)")
    cast.add_argument("--chapters", help="chapters to read, 1-based, e.g. 1-3,5")
    cast.add_argument("--include-matter", action="store_true", help="also read front and back matter")
    cast.add_argument("-o", "--output", type=Path, help="cast file to write (default: BOOK.cast.toml here)")
    cast.add_argument("--force", action="store_true", help="write over an existing cast file")
    cast.add_argument("--no-write", action="store_true", help="only list the characters")
    cast.add_argument("--min-confidence", type=float, default=0.5, help="attributions counted (default 0.5)")
    cast.add_argument("--json", action="store_true", help="machine-readable output (cast.schema.json)")
