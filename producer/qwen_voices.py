"""Qwen3-TTS on the command line: which engine a voice needs, `voxfarm voices add`, `voxfarm models`.

A voice id can name a Piper voice or a Qwen3-TTS voice spec; when no engine
is given, a voice spec picks ``qwen3-tts`` by itself. Planning a Qwen3-TTS
voice fetches only its checkpoint's tokenizer files and configs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producer.console import print_json
from shared.engines import engine_spec
from shared.errors import BadInputError, ConfigError, StorageError, UnknownVoiceError
from shared.qwen import ENGINE, MODES
from shared.qwen.store import TOKENIZER_FILES, ModelFiles, ModelStore
from shared.qwen.voices import QwenVoiceRegistry, QwenVoiceSpec, ResolvedVoice, resolve_voice
from shared.settings import Settings
from shared.storage import Storage
from shared.voices import DEFAULT_VOICE


@dataclass(frozen=True)
class QwenVoiceLookup:
    """A Qwen3-TTS voice found by id, with the tokenizer-only files of its checkpoint."""

    id: str
    spec: QwenVoiceSpec
    model: ModelFiles

    def resolve(self, book_language: str | None) -> ResolvedVoice:
        return resolve_voice(
            self.id, self.spec, self.model, book_language=book_language, engine_version=engine_spec(ENGINE).version
        )


def optional_storage(settings: Settings, storage: Storage | None) -> Storage | None:
    """The given storage, or the configured one for commands (`voxfarm plan`) that otherwise run without."""
    if storage is not None or not settings.storage_url:
        return storage
    opened = Storage.from_settings(settings)
    opened.check()
    return opened


def find_qwen_voice(
    voice_id: str, engine: str | None, settings: Settings, storage: Storage | None
) -> QwenVoiceLookup | None:
    """The Qwen3-TTS voice ``voice_id`` when the engine is qwen3-tts or unset; None for a Piper voice."""
    if engine not in (None, ENGINE) or (engine is None and voice_id == DEFAULT_VOICE):
        return None
    if engine is None:
        # Only looking: a Piper voice must stay plannable when storage is unreachable.
        try:
            storage = optional_storage(settings, storage)
            spec = QwenVoiceRegistry(settings.voices_dir, storage).find(voice_id)
        except (StorageError, ConfigError):
            spec = None
    else:
        storage = optional_storage(settings, storage)
        spec = QwenVoiceRegistry(settings.voices_dir, storage).find(voice_id)
    if spec is None:
        if engine == ENGINE:
            raise UnknownVoiceError(
                f"no Qwen3-TTS voice {voice_id!r}; add one with `voxfarm voices add {voice_id} --model NAME ...`"
            )
        return None
    model = ModelStore(settings.models_dir, storage, settings.effective_cache_dir).resolve(
        spec.model, only=TOKENIZER_FILES
    )
    spec.check_against(model)
    return QwenVoiceLookup(voice_id, spec, model)


# --- voxfarm voices / voxfarm voices add -------------------------------------------------------


def add_voice_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    voices = sub.add_parser("voices", help="list the voices this installation can use, or add one")
    voices.add_argument("--json", action="store_true", help="details of every voice as JSON")
    actions = voices.add_subparsers(dest="voices_command", metavar="ACTION")
    add = actions.add_parser(
        "add", help="store a voice preset: a Piper model (--piper) or a Qwen3-TTS speaker, design or clone (--model)"
    )
    add.add_argument("id", help="voice id: letters, digits, '-' and '_'")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--piper", metavar="MODEL.onnx", help="a Piper model (.onnx + .onnx.json), or a voice id")
    source.add_argument("--model", help="Qwen3-TTS: checkpoint name in the model store (`voxfarm models`)")
    add.add_argument("--mode", choices=MODES, help="default: the checkpoint's mode")
    add.add_argument("--speaker", help="Piper: speaker number or name; custom_voice: a preset speaker")
    add.add_argument("--length-scale", type=float, help="Piper: speaking rate, >1 slower (default: the model's)")
    add.add_argument("--noise-scale", type=float, help="Piper: voice variation (default: the model's)")
    add.add_argument("--noise-w", type=float, help="Piper: timing variation (default: the model's)")
    add.add_argument("--instruct", help="custom_voice: default style; voice_design: the voice's description")
    add.add_argument(
        "--language",
        help="Piper: languages spoken, e.g. en or en,fr (default: the model's); "
        "Qwen3-TTS: chinese, english, ... or auto (default: the book's language)",
    )
    add.add_argument("--ref-audio", type=Path, help="voice_clone: reference recording (WAV or FLAC, a few seconds)")
    add.add_argument("--ref-text", help="voice_clone: transcript of the reference (without it: timbre only)")
    add.add_argument("--description", help="a note for people listing voices")

    models = sub.add_parser("models", help="list Qwen3-TTS checkpoints, or publish one to the model store")
    models.add_argument("--json", action="store_true")
    model_actions = models.add_subparsers(dest="models_command", metavar="ACTION")
    push = model_actions.add_parser("push", help="upload a checkpoint folder to models/<name>/ with its manifest")
    push.add_argument("directory", type=Path)
    push.add_argument("--name", required=True, help="model name: letters, digits, '-' and '_'")


def _storage(settings: Settings) -> Storage:
    return optional_storage(settings, None) or Storage.from_settings(settings)


def add_voice(args: argparse.Namespace, settings: Settings) -> int:
    storage = _storage(settings)
    model = ModelStore(settings.models_dir, storage, settings.effective_cache_dir).resolve(
        args.model, only=TOKENIZER_FILES
    )
    ref_audio: bytes | None = None
    if args.ref_audio is not None:
        try:
            ref_audio = args.ref_audio.read_bytes()
        except OSError as exc:
            raise BadInputError(f"cannot read the reference audio {args.ref_audio}: {exc}") from exc
    document = {
        "model": args.model,
        "mode": args.mode or model.mode,
        "speaker": args.speaker,
        "instruct": args.instruct,
        "language": args.language or "auto",
        "ref_text": args.ref_text,
        "description": args.description,
        # Validated with a placeholder; publishing puts the stored audio's real path in its place.
        "ref_audio": f"voices/refs/{'0' * 64}.wav" if ref_audio is not None else None,
    }
    spec = QwenVoiceSpec.model_validate({k: v for k, v in document.items() if v is not None})
    spec.check_against(model)
    suffix = args.ref_audio.suffix if args.ref_audio is not None else ".wav"
    stored = QwenVoiceRegistry(settings.voices_dir, storage).publish(args.id, spec, ref_audio, suffix)
    print(stored.model_dump_json(indent=2, exclude_none=True))
    return 0


def list_voices(
    piper: list[str],
    settings: Settings,
    storage: Storage | None,
    as_json: bool,
    presets: list[dict[str, Any]] = [],  # noqa: B006 - read only
) -> int:
    """Piper models, Piper presets (rows of ``producer.piper_voices.preset_rows``) and Qwen3-TTS voices."""
    from producer.piper_voices import format_row

    qwen = QwenVoiceRegistry(settings.voices_dir, storage).available()
    if as_json:
        rows: list[dict[str, object]] = [{"id": v, "engine": "piper"} for v in piper]
        rows += presets
        rows += [{"id": v, **spec.model_dump(exclude_none=True)} for v, spec in qwen.items()]
        print_json(rows)
        return 0
    for voice_id in piper:
        print(voice_id)
    for row in presets:
        print(format_row(row))
    for voice_id, spec in qwen.items():
        detail = spec.speaker or spec.description or (spec.instruct or "")[:40] or ""
        print(f"{voice_id}\t{ENGINE} {spec.mode} on {spec.model}" + (f"\t{detail}" if detail else ""))
    return 0


def models(args: argparse.Namespace, settings: Settings) -> int:
    storage = _storage(settings)
    store = ModelStore(settings.models_dir, storage, settings.effective_cache_dir)
    if args.models_command == "push":
        manifest = store.publish(args.directory, args.name)
        print(f"{args.name}: {len(manifest.files)} files, checksum {manifest.checksum[:16]}", file=sys.stderr)
        return 0
    found = [store.resolve(name, only=TOKENIZER_FILES).describe() for name in store.available()]
    if args.json:
        print_json(found)
        return 0
    for model in found:
        print(f"{model['name']}\t{model['mode']}\t{len(model['speakers'])} speakers\t{model['sample_rate']} Hz")
    return 0
