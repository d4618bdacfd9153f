"""`voxfarm voices add NAME --piper MODEL.onnx`: register a Piper model as a named voice preset.

The model is checked before anything is stored (a Piper config beside it,
the inputs piper-onnx feeds, a speaker the model has), checksummed, and
uploaded to ``voices/<model>.onnx`` in storage, where every worker finds it;
the preset that names it is stored last.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared.errors import BadInputError, NotFoundError, UnknownVoiceError
from shared.names import check_voice_id
from shared.presets import LANGUAGE_PATTERN, PiperPreset, PresetRegistry, PresetVoice
from shared.voices import VoiceFiles, VoiceRegistry, file_sha256

REQUIRED_INPUTS = ("input", "input_lengths", "scales")


def check_model(model: Path) -> VoiceFiles:
    """The model and its config, refused with a reason when piper-onnx could not run it."""
    if not model.is_file():
        raise NotFoundError(f"{model}: no such model file")
    if model.suffix != ".onnx":
        raise BadInputError(f"{model.name}: a Piper model is an .onnx file (with its .onnx.json beside it)")
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise NotFoundError(f"{model.name}: its config {config.name} is missing; Piper voices come as a pair")
    files = VoiceFiles(check_voice_id(model.stem), model, config, source=str(model.parent))
    files.config  # noqa: B018 - reads and validates the config
    import onnx

    try:
        graph = onnx.load(str(model)).graph
    except Exception as exc:  # onnx raises DecodeError and friends
        raise BadInputError(f"{model.name} is not a readable ONNX model: {exc}") from exc
    inputs = {i.name for i in graph.input}
    missing = [name for name in REQUIRED_INPUTS if name not in inputs]
    if missing:
        raise BadInputError(f"{model.name} is not a Piper voice: it has no input(s) {', '.join(missing)}")
    speakers = int(files.config.get("num_speakers", 1))
    if speakers > 1 and "sid" not in inputs:
        raise BadInputError(f"{model.name}: its config says {speakers} speakers but the model has no sid input")
    if not any(node.op_type == "Ceil" for node in graph.node):
        raise BadInputError(f"{model.name}: no duration (Ceil) node; is it a Piper VITS export?")
    return files


def speaker_id(files: VoiceFiles, speaker: str | None) -> int | None:
    """A speaker given by number or by its name in the config's speaker_id_map."""
    if speaker is None:
        return None
    speakers = int(files.config.get("num_speakers", 1))
    names: dict[str, Any] = files.config.get("speaker_id_map") or {}
    value = int(speaker) if speaker.isdigit() else names.get(speaker)
    if value is None:
        known = ", ".join(sorted(names)) or f"0-{speakers - 1}"
        raise BadInputError(f"model {files.id} has no speaker {speaker!r}; it has: {known}")
    if speakers <= 1 and value != 0:
        raise BadInputError(f"model {files.id} has one speaker; --speaker does not apply")
    if value >= max(speakers, 1):
        raise BadInputError(f"model {files.id} has {speakers} speakers (0-{speakers - 1}), no {value}")
    return int(value)


def _languages(text: str | None) -> list[str]:
    import re

    if not text:
        return []
    codes = [code.strip().lower() for code in text.split(",") if code.strip()]
    for code in codes:
        if not re.match(LANGUAGE_PATTERN, code):
            raise BadInputError(f"language {code!r}: use ISO 639 codes such as en, zh, de (comma-separated)")
    return codes


def add_piper_voice(args: argparse.Namespace, registry: VoiceRegistry) -> PresetVoice:
    """Check, store and describe a new preset."""
    presets = PresetRegistry(registry)
    name = check_voice_id(args.id)
    source = Path(args.piper)
    upload: Path | None = None
    if source.suffix == ".onnx" or source.exists():
        files = check_model(source)
        checksum = file_sha256(source)
        try:
            stored = registry.resolve(files.id)
        except UnknownVoiceError:
            upload = source
        else:
            if stored.checksum != checksum:
                raise BadInputError(
                    f"a different model is already stored as {files.id!r} ({stored.source}); rename {source.name}"
                )
    else:
        files = registry.resolve(check_voice_id(args.piper))
        checksum = files.checksum
    preset = PiperPreset(
        model=files.id,
        sha256=checksum,
        speaker=speaker_id(files, args.speaker),
        length_scale=args.length_scale,
        noise_scale=args.noise_scale,
        noise_w=args.noise_w,
        languages=_languages(args.language),
        description=args.description,
    )
    presets.publish(name, preset, upload)
    return presets.resolve(name)


def preset_rows(presets: PresetRegistry) -> list[dict[str, Any]]:
    """Every preset, described; one that no longer resolves says why."""
    rows: list[dict[str, Any]] = []
    for name in presets.available():
        try:
            rows.append(presets.resolve(name).describe())
        except (BadInputError, NotFoundError) as exc:
            rows.append({"id": name, "engine": "piper", "error": str(exc)})
    return rows


def format_row(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['id']}\tpiper preset\t{row['error']}"
    settings = ", ".join(f"{k} {row[k]}" for k in ("speaker", "length_scale") if k in row)
    languages = ",".join(row["languages"]) or "?"
    return f"{row['id']}\tpiper preset of {row['model']} ({languages})" + (f"\t{settings}" if settings else "")


def print_added(voice: PresetVoice) -> None:
    print(json.dumps(voice.describe(), indent=2, ensure_ascii=False))
