"""Qwen3-TTS voices as data: small JSON files in storage (``voices/<id>.json``) that name a checkpoint.

A voice is one of:

- ``custom_voice``: a preset speaker of a CustomVoice checkpoint, with an
  optional instruction (tone, emotion, pace);
- ``voice_design``: a natural-language description of the voice, for a
  VoiceDesign checkpoint ("30岁女性，亲切自然，语速适中");
- ``voice_clone``: reference audio (+ its transcript) for a Base checkpoint;
  the audio is stored content-addressed under ``voices/refs/``.

A clone's prompt (speech codes and speaker embedding of the reference) is
computed by the first worker that needs it and cached in storage under the
key of its inputs, so every worker of the cluster reuses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import BadInputError, NotFoundError
from shared.names import VOICE_ID_PATTERN, check_voice_id
from shared.qwen import ENGINE, qwen_language
from shared.qwen.store import ModelFiles
from shared.schema import MAX_INSTRUCT_CHARS, VoiceConditioning
from shared.storage import Storage

VOICES_PREFIX = "voices"
REFS_PREFIX = "voices/refs"
PROMPTS_PREFIX = "voices/prompts"
REF_SUFFIXES = {".wav": "wav", ".flac": "flac"}
MAX_REF_BYTES = 20 * 1024 * 1024
SEED_POLICY = "content-key"
"""Sampling noise of every segment is seeded from its content key (recorded in the key itself)."""

_BOOK_TO_FRONTEND = {"chinese": "zh", "english": "en", "japanese": "ja", "korean": "ko"}


class QwenVoiceSpec(BaseModel):
    """The voice file, ``voices/<id>.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    engine: Literal["qwen3-tts"] = "qwen3-tts"
    model: str = Field(pattern=VOICE_ID_PATTERN)
    """Checkpoint name in the model store; its mode must be this voice's mode."""
    mode: Literal["custom_voice", "voice_design", "voice_clone"]
    speaker: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,80}$")
    instruct: str | None = Field(default=None, max_length=MAX_INSTRUCT_CHARS)
    """custom_voice: a default style instruction; voice_design: the voice's description."""
    language: str = Field(default="auto", pattern=r"^[a-z_]{2,40}$")
    """A Qwen language name (chinese, english, ...) or 'auto': the book's language decides."""
    ref_audio: str | None = Field(default=None, pattern=r"^voices/refs/[0-9a-f]{64}\.(wav|flac)$")
    ref_text: str | None = Field(default=None, max_length=MAX_INSTRUCT_CHARS)
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _mode_fields(self) -> QwenVoiceSpec:
        if self.mode == "custom_voice" and not self.speaker:
            raise ValueError("a custom_voice voice needs a speaker")
        if self.mode == "voice_design" and not (self.instruct or "").strip():
            raise ValueError("a voice_design voice needs an instruct: the description of the voice")
        if self.mode == "voice_clone" and not self.ref_audio:
            raise ValueError("a voice_clone voice needs ref_audio (add it with `voxfarm voices add --ref-audio`)")
        if self.mode != "voice_clone" and (self.ref_audio or self.ref_text):
            raise ValueError(f"ref_audio and ref_text belong to voice_clone voices, not {self.mode}")
        if self.mode != "custom_voice" and self.speaker:
            raise ValueError(f"speaker belongs to custom_voice voices, not {self.mode}")
        if self.mode == "voice_clone" and self.instruct:
            raise ValueError("Qwen3-TTS Base checkpoints (voice_clone) take no instruction")
        return self

    @property
    def ref_sha256(self) -> str | None:
        return self.ref_audio.rsplit("/", 1)[-1].split(".")[0] if self.ref_audio else None

    def check_against(self, model: ModelFiles) -> None:
        """Refuse a voice its checkpoint cannot speak, on the control plane, before anything is queued."""
        if model.mode != self.mode:
            raise BadInputError(
                f"voice needs a {self.mode} checkpoint, but model {model.name} is {model.mode} "
                "(each Qwen3-TTS checkpoint serves one mode)"
            )
        if self.speaker and self.speaker.lower() not in model.speakers:
            raise BadInputError(
                f"model {model.name} has no speaker {self.speaker!r}; it has: {', '.join(model.speakers)}"
            )
        if self.language not in model.languages:
            raise BadInputError(
                f"model {model.name} does not speak {self.language!r}; it speaks: {', '.join(model.languages)}"
            )


def parse_spec(raw: bytes | str, where: str) -> QwenVoiceSpec:
    try:
        return QwenVoiceSpec.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "voice"
        raise BadInputError(f"{where}: invalid Qwen3-TTS voice: {field}: {first['msg']}") from exc


def spec_path(voice_id: str) -> str:
    return f"{VOICES_PREFIX}/{check_voice_id(voice_id)}.json"


def is_spec_document(raw: bytes) -> bool:
    """A voices/<id>.json that is a voice spec (and not a Piper voice config, which lives at <id>.onnx.json)."""
    try:
        document = json.loads(raw)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("engine") == ENGINE


class QwenVoiceRegistry:
    """Qwen3-TTS voice specs from the voices folder (``<id>.json``) and from storage (``voices/<id>.json``)."""

    def __init__(self, voices_dir: Path | None = None, storage: Storage | None = None) -> None:
        self.voices_dir = voices_dir
        self.storage = storage

    def find(self, voice_id: str) -> QwenVoiceSpec | None:
        """The spec of ``voice_id``, or None when it is not a Qwen3-TTS voice (e.g. a Piper voice)."""
        check_voice_id(voice_id)
        if self.voices_dir is not None:
            local = self.voices_dir / f"{voice_id}.json"
            if local.is_file():
                raw = local.read_bytes()
                if is_spec_document(raw):
                    return parse_spec(raw, str(local))
        if self.storage is not None:
            try:
                raw = self.storage.get_bytes(spec_path(voice_id))
            except NotFoundError:
                return None
            if is_spec_document(raw):
                return parse_spec(raw, f"{self.storage.describe()}/{spec_path(voice_id)}")
        return None

    def available(self) -> dict[str, QwenVoiceSpec]:
        found: dict[str, QwenVoiceSpec] = {}
        candidates: list[str] = []
        if self.voices_dir is not None and self.voices_dir.is_dir():
            candidates += [p.stem for p in self.voices_dir.glob("*.json") if not p.name.endswith(".onnx.json")]
        if self.storage is not None:
            try:
                for path in self.storage.list(VOICES_PREFIX):
                    parts = path.split("/")
                    if len(parts) == 2 and parts[1].endswith(".json") and not parts[1].endswith(".onnx.json"):
                        candidates.append(parts[1][: -len(".json")])
            except Exception:  # noqa: BLE001 - listing is a courtesy; resolving reports real errors
                pass
        for voice_id in sorted(set(candidates)):
            try:
                spec = self.find(voice_id)
            except BadInputError:
                continue
            if spec is not None:
                found[voice_id] = spec
        return found

    def publish(
        self, voice_id: str, spec: QwenVoiceSpec, ref_audio: bytes | None = None, ref_suffix: str = ".wav"
    ) -> QwenVoiceSpec:
        """Store a voice; reference audio goes first, content-addressed, then the spec that points at it."""
        if self.storage is None:
            raise BadInputError("adding a voice needs storage (VOXFARM_STORAGE_URL)")
        check_voice_id(voice_id)
        if ref_audio is not None:
            if len(ref_audio) > MAX_REF_BYTES:
                raise BadInputError(f"reference audio of {len(ref_audio)} bytes is over {MAX_REF_BYTES}; trim it")
            kind = REF_SUFFIXES.get(ref_suffix.lower())
            if kind is None:
                raise BadInputError(f"reference audio must be WAV or FLAC, not {ref_suffix!r}")
            path = f"{REFS_PREFIX}/{hashlib.sha256(ref_audio).hexdigest()}.{kind}"
            self.storage.put_bytes(path, ref_audio, f"audio/{kind}")
            spec = spec.model_copy(update={"ref_audio": path})
            spec = QwenVoiceSpec.model_validate(spec.model_dump())
        self.storage.put_bytes(spec_path(voice_id), spec.model_dump_json(indent=1, exclude_none=True).encode())
        return spec


def clone_prompt_key(*, engine_version: str, model_checksum: str, spec: QwenVoiceSpec) -> str:
    """The content key of a clone prompt: the same checkpoint, audio and transcript give the same prompt."""
    document = {
        "engine": ENGINE,
        "engine_version": engine_version,
        "model": model_checksum,
        "ref_audio": spec.ref_sha256,
        "ref_text": spec.ref_text,
        "x_vector_only": not spec.ref_text,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def prompt_path(key: str) -> str:
    return f"{PROMPTS_PREFIX}/{key[:2]}/{key}.npz"


@dataclass(frozen=True)
class ResolvedVoice:
    """A Qwen3-TTS voice ready to plan with: its spec, its checkpoint's files and the book's language.

    Duck-types the planner's view of a voice (``id``, ``checksum``,
    ``sample_rate``, ``config`` for the frontend) and makes each chapter's
    ``VoiceConditioning``.
    """

    id: str
    spec: QwenVoiceSpec
    model: ModelFiles
    language: str
    """The Qwen language name segments are read in ('auto' lets the model decide)."""
    book_language: str | None
    engine_version: str

    @property
    def checksum(self) -> str:
        return self.model.checksum

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def config(self) -> dict[str, Any]:
        """What ``create_frontend('qwen3', ...)`` needs: the tokenizer folder and the text's language."""
        code = _BOOK_TO_FRONTEND.get(self.language) or self.book_language or "en"
        return {"tokenizer_dir": str(self.model.path), "language": code}

    @property
    def prompt_key(self) -> str | None:
        if self.spec.mode != "voice_clone":
            return None
        return clone_prompt_key(engine_version=self.engine_version, model_checksum=self.checksum, spec=self.spec)

    def conditioning(self, instruct: str | None = None) -> VoiceConditioning:
        """The voicing of one chapter; ``instruct`` is the chapter's instruction, if it has one.

        custom_voice: it replaces the voice's default instruction. voice_design:
        it is added to the description, which stays the voice. voice_clone:
        Base checkpoints take no instruction, so it is not used.
        """
        spec = self.spec
        effective = spec.instruct
        extra = (instruct or "").strip() or None
        if spec.mode == "custom_voice" and extra:
            effective = extra
        elif spec.mode == "voice_design" and extra:
            effective = f"{(spec.instruct or '').strip()} {extra}".strip()
        elif spec.mode == "voice_clone":
            effective = None
        return VoiceConditioning(
            model=self.model.name,
            mode=spec.mode,
            language=self.language,
            speaker=spec.speaker.lower() if spec.speaker else None,
            instruct=effective,
            prompt=self.prompt_key,
            ref_audio=spec.ref_audio,
            ref_text=spec.ref_text,
        )

    def key_document(self, conditioning: VoiceConditioning) -> Mapping[str, Any]:
        """What of a segment's voicing enters its content key, with the seed policy."""
        return {**conditioning.model_dump(mode="json"), "seed": SEED_POLICY}


def resolve_voice(
    voice_id: str, spec: QwenVoiceSpec, model: ModelFiles, *, book_language: str | None, engine_version: str
) -> ResolvedVoice:
    """Check the voice against its checkpoint and fix the language its segments are read in."""
    spec.check_against(model)
    language = spec.language
    if language == "auto":
        guess = qwen_language(book_language)
        language = guess if guess in model.languages else "auto"
    return ResolvedVoice(voice_id, spec, model, language, book_language, engine_version)
