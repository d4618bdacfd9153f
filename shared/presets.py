"""Voice presets: a named Piper model with its speaker, synthesis settings and languages.

A preset is a small JSON document, ``voices/<name>.json`` in storage (or
``<name>.json`` in the voices folder), that names a Piper model stored beside
it (``voices/<model>.onnx`` + ``.onnx.json``) or the bundled voice. Several
presets can share one model: they differ in speaker id or settings, which
travel in each message, so their segments share the model's queues and
batches. Every field that changes the audio enters the content key through
the segment's ``SynthesisParams``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadInputError, NotFoundError, UnknownVoiceError
from shared.names import VOICE_ID_PATTERN, check_voice_id
from shared.schema import SynthesisParams
from shared.storage import Storage
from shared.voices import DEFAULT_VOICE, VoiceFiles, VoiceRegistry

PRESET_ENGINE = "piper"
LANGUAGE_PATTERN = r"^[a-z]{2,3}$"

#: espeak-ng voice names whose primary subtag is not an ISO 639-1 code.
_ESPEAK_LANGUAGES = {"cmn": "zh", "yue": "zh", "sit": "zh"}


class PiperPreset(BaseModel):
    """The preset document; unset settings fall back to the model's own defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    engine: Literal["piper"] = "piper"
    model: str = Field(pattern=VOICE_ID_PATTERN)
    """The Piper model: ``voices/<model>.onnx`` in storage or the voices folder, or the bundled voice."""
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """Checksum of the weights when the preset was added; a model replaced since is refused."""
    speaker: int | None = Field(default=None, ge=0, le=100_000)
    length_scale: float | None = Field(default=None, gt=0.05, le=5.0)
    noise_scale: float | None = Field(default=None, ge=0.0, le=2.0)
    noise_w: float | None = Field(default=None, ge=0.0, le=2.0)
    languages: list[str] = Field(default_factory=list)
    """ISO 639 codes (en, zh...) the voice speaks; empty: the model's own language."""
    description: str | None = Field(default=None, max_length=500)


def model_params(config: dict[str, Any]) -> SynthesisParams:
    """A Piper model's own inference settings, from its ``.onnx.json``."""
    inference = config.get("inference", {})
    return SynthesisParams(
        noise_scale=float(inference.get("noise_scale", 0.667)),
        length_scale=float(inference.get("length_scale", 1.0)),
        noise_w=float(inference.get("noise_w", 0.8)),
    )


def language_code(tag: str | None) -> str | None:
    """The primary language of a tag (``en_US``, ``en-gb``, ``cmn``, ``zh-CN``) as an ISO 639 code."""
    if not tag:
        return None
    primary = tag.strip().lower().replace("_", "-").split("-")[0].split("/")[-1]
    primary = _ESPEAK_LANGUAGES.get(primary, primary)
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


def model_languages(config: dict[str, Any]) -> tuple[str, ...]:
    """What a Piper model speaks, from its config's language block or espeak voice."""
    block = config.get("language") or {}
    espeak = config.get("espeak") or {}
    code = language_code(str(block.get("code") or "")) or language_code(str(espeak.get("voice") or ""))
    return (code,) if code else ()


@dataclass(frozen=True)
class PresetVoice:
    """A voice ready to plan with: the model's files, the settings it speaks with, and its languages."""

    name: str
    files: VoiceFiles
    params: SynthesisParams
    languages: tuple[str, ...]
    preset: PiperPreset | None = None

    engine: None = None
    """Piper presets run on the job's Piper engine (piper-onnx or piper-torch)."""
    conditioning: None = None
    key_document: None = None

    @property
    def model(self) -> str:
        """The Piper model id: it names the worker queues and the segments' storage folder."""
        return self.files.id

    @property
    def sample_rate(self) -> int:
        return self.files.sample_rate

    @property
    def checksum(self) -> str:
        return self.files.checksum

    @property
    def config(self) -> dict[str, Any]:
        """What the Piper frontend phonemises with."""
        return self.files.config

    def queue_model(self, job_engine: str) -> str:
        """The model whose queues serve this voice: the job's Piper engine with this voice's weights."""
        return f"{job_engine}.{self.model}"

    def speaks(self, language: str | None) -> bool:
        return language is None or not self.languages or language in self.languages

    def describe(self) -> dict[str, Any]:
        """One row of `voxfarm voices --json`."""
        row: dict[str, Any] = {
            "id": self.name,
            "engine": PRESET_ENGINE,
            "model": self.model,
            "languages": list(self.languages),
            "sample_rate": self.files.sample_rate,
            "speakers": int(self.files.config.get("num_speakers", 1)),
            **self.params.model_dump(exclude_none=True),
        }
        if self.preset is not None and self.preset.description:
            row["description"] = self.preset.description
        return row


def preset_path(name: str) -> str:
    return f"voices/{check_voice_id(name)}.json"


def _parse(raw: bytes, where: str) -> PiperPreset | None:
    """The preset in ``raw``, or None when the document is another kind of voice (a Qwen3-TTS spec)."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise BadInputError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("engine") != PRESET_ENGINE:
        return None
    try:
        return PiperPreset.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "preset"
        raise BadInputError(f"{where}: invalid voice preset: {field}: {first['msg']}") from exc


class PresetRegistry:
    """Finds presets and plain Piper voices by name, and stores new presets."""

    def __init__(self, voices: VoiceRegistry) -> None:
        self.voices = voices

    @property
    def storage(self) -> Storage | None:
        return self.voices.storage

    def find(self, name: str) -> PiperPreset | None:
        check_voice_id(name)
        folder = self.voices.voices_dir
        if folder is not None and (folder / f"{name}.json").is_file():
            found = _parse((folder / f"{name}.json").read_bytes(), str(folder / f"{name}.json"))
            if found is not None:
                return found
        if self.storage is not None:
            try:
                raw = self.storage.get_bytes(preset_path(name))
            except NotFoundError:
                return None
            return _parse(raw, f"{self.storage.describe()}/{preset_path(name)}")
        return None

    def resolve(self, name: str) -> PresetVoice:
        """A preset, or a plain Piper voice (the bundled one, a voices-folder or storage model)."""
        preset = self.find(name)
        if preset is None:
            files = self.voices.resolve(name)
            return PresetVoice(name, files, model_params(files.config), model_languages(files.config))
        try:
            files = self.voices.resolve(preset.model)
        except UnknownVoiceError:
            raise UnknownVoiceError(
                f"voice {name!r}: its model {preset.model!r} is missing from storage; "
                f"add it again with `voxfarm voices add {name} --piper {preset.model}.onnx`"
            ) from None
        if preset.sha256 and files.checksum != preset.sha256:
            raise BadInputError(
                f"voice {name!r}: model {preset.model!r} has changed since the voice was added "
                f"(sha256 {files.checksum[:12]}, expected {preset.sha256[:12]}); add the voice again"
            )
        speakers = int(files.config.get("num_speakers", 1))
        if preset.speaker is not None and preset.speaker >= speakers:
            raise BadInputError(
                f"voice {name!r}: model {preset.model!r} has {speakers} speaker(s), no {preset.speaker}"
            )
        overrides = {
            "speaker": preset.speaker,
            "length_scale": preset.length_scale,
            "noise_scale": preset.noise_scale,
            "noise_w": preset.noise_w,
        }
        params = model_params(files.config).model_copy(update={k: v for k, v in overrides.items() if v is not None})
        languages = tuple(preset.languages) or model_languages(files.config)
        return PresetVoice(name, files, SynthesisParams.model_validate(params.model_dump()), languages, preset)

    def available(self) -> list[str]:
        """Preset names, from the voices folder and storage."""
        found: set[str] = set()
        folder = self.voices.voices_dir
        if folder is not None and folder.is_dir():
            found.update(p.stem for p in folder.glob("*.json") if not p.name.endswith(".onnx.json"))
        if self.storage is not None:
            try:
                for path in self.storage.list("voices"):
                    parts = path.split("/")
                    if len(parts) == 2 and parts[1].endswith(".json") and not parts[1].endswith(".onnx.json"):
                        found.add(parts[1][: -len(".json")])
            except Exception:  # noqa: BLE001 - listing is a courtesy; resolving reports real errors
                pass
        names = []
        for name in sorted(found):
            try:
                if self.find(name) is not None:
                    names.append(name)
            except BadInputError:
                continue
        return names

    def publish(self, name: str, preset: PiperPreset, model: Path | None = None) -> None:
        """Store a preset; a new model's files go first, so a preset never points at a missing model."""
        if self.storage is None:
            raise BadInputError("adding a voice needs storage (VOXFARM_STORAGE_URL)")
        check_voice_id(name)
        if name == DEFAULT_VOICE:
            raise BadInputError(f"voice name {name!r} is the bundled voice; choose another name for the preset")
        if model is not None:
            self.storage.put_file(f"voices/{preset.model}.onnx", model, "application/octet-stream")
            config = model.with_name(model.name + ".json")
            self.storage.put_file(f"voices/{preset.model}.onnx.json", config, "application/json")
        self.storage.put_bytes(preset_path(name), preset.model_dump_json(indent=1, exclude_none=True).encode())


def passage_language(text: str, book_language: str | None) -> str | None:
    """The language a passage is in: Chinese by its script, otherwise the book's (unknown: None)."""
    from shared.frontend.chinese import is_chinese

    book = language_code(book_language)
    if is_chinese(text):
        return "zh"
    if book == "zh":
        return "en" if any(ch.isascii() and ch.isalpha() for ch in text) else None
    return book


def unspoken_note(language: str, voices: dict[str, int], segments: int, available: list[str] = []) -> str:  # noqa: B006
    """What `plan`, `render` and the manifest say about passages no voice of the job speaks."""
    readers = ", ".join(sorted(voices))
    options = f" (voices that speak it: {', '.join(available)})" if available else ""
    return (
        f"{segments} segment(s) in language {language!r} are read by {readers}, which does not speak it{options}; "
        f"add a Piper voice for {language} (`voxfarm voices add NAME --piper MODEL.onnx --language {language}`) "
        f'and map it in a cast file ([languages] {language} = "NAME"), or use a qwen3-tts voice (docs/qwen3.md)'
    )
