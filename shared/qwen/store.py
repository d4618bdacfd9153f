"""The model store: Qwen3-TTS checkpoints as folders, locally or under ``models/<name>/`` in storage.

A checkpoint is a folder (config.json, generation_config.json, weights,
tokenizer files, speech_tokenizer/...) plus a ``manifest.json`` that lists
every file with its size and sha256. The manifest's own checksum (sha256
over its file list) is the checkpoint's identity: it enters every content
key, so replacing one file of a checkpoint re-renders what it spoke.

A node downloads a checkpoint from storage once into its cache folder
(``<cache>/models/<name>/<checksum[:16]>/``), verifying every file against
the manifest, under a file lock so the workers of one pool download it
once between them. The producer asks for the tokenizer files only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from shared.errors import BadInputError, NotFoundError, StorageError, UnknownVoiceError
from shared.names import check_voice_id
from shared.qwen import SAMPLE_RATE, mode_of_model_type
from shared.storage import Storage
from shared.voices import file_sha256

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MODELS_PREFIX = "models"
TOKENIZER_FILES = (
    "config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "speech_tokenizer/config.json",
)
"""What the control plane needs of a checkpoint: its tokenizer and configs, never its weights."""

_FILE_PART = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class ManifestEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelManifest:
    """Every file of a checkpoint, by path relative to its folder."""

    name: str
    files: dict[str, ManifestEntry]

    @property
    def checksum(self) -> str:
        listing = {path: [entry.sha256, entry.size] for path, entry in sorted(self.files.items())}
        return hashlib.sha256(json.dumps(listing, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def to_json(self) -> str:
        files = {path: {"sha256": e.sha256, "size": e.size} for path, e in sorted(self.files.items())}
        return json.dumps({"v": 1, "name": self.name, "files": files, "checksum": self.checksum}, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> ModelManifest:
        try:
            document = json.loads(text)
            files = {
                _check_file(str(path)): ManifestEntry(str(entry["sha256"]), int(entry["size"]))
                for path, entry in document["files"].items()
            }
            manifest = cls(check_voice_id(str(document["name"])), files)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadInputError(f"{where}: not a voxfarm model manifest ({exc})") from exc
        if "config.json" not in manifest.files:
            raise BadInputError(f"{where}: the manifest lists no config.json; is it a Qwen3-TTS checkpoint?")
        return manifest


def _check_file(path: str) -> str:
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") or not _FILE_PART.match(p) for p in parts):
        raise BadInputError(f"unsafe file name {path!r} in a model manifest")
    return path


def scan(directory: Path, name: str) -> ModelManifest:
    """The manifest of a checkpoint folder (hashes are remembered by size and mtime, so a rescan is cheap)."""
    files: dict[str, ManifestEntry] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.name == MANIFEST or path.name.startswith("."):
            continue
        relative = _check_file(path.relative_to(directory).as_posix())
        files[relative] = ManifestEntry(file_sha256(path), path.stat().st_size)
    if "config.json" not in files:
        raise BadInputError(f"{directory} has no config.json; is it a Qwen3-TTS checkpoint folder?")
    return ModelManifest(check_voice_id(name), files)


@dataclass(frozen=True)
class ModelFiles:
    """A checkpoint on local disk (all of it, or only the tokenizer files on the control plane)."""

    name: str
    path: Path
    manifest: ModelManifest
    source: str = field(default="local", compare=False)

    @property
    def checksum(self) -> str:
        return self.manifest.checksum

    @cached_property
    def config(self) -> dict[str, Any]:
        return _read_json(self.path / "config.json", self.name)

    @property
    def mode(self) -> str:
        """custom_voice, voice_design or voice_clone: what this checkpoint can do (one mode each)."""
        try:
            return mode_of_model_type(str(self.config.get("tts_model_type")))
        except ValueError as exc:
            raise BadInputError(f"model {self.name}: {exc}; is it a Qwen3-TTS checkpoint?") from exc

    @property
    def speakers(self) -> list[str]:
        return sorted(str(s).lower() for s in (self.config.get("talker_config", {}).get("spk_id") or {}))

    @property
    def languages(self) -> list[str]:
        """Languages the checkpoint names (dialects are chosen through speakers), plus 'auto'."""
        ids = self.config.get("talker_config", {}).get("codec_language_id") or {}
        return ["auto", *sorted(str(k).lower() for k in ids if "dialect" not in str(k))]

    @property
    def sample_rate(self) -> int:
        speech = self.path / "speech_tokenizer" / "config.json"
        if speech.is_file():
            return int(_read_json(speech, self.name).get("output_sample_rate", SAMPLE_RATE))
        return SAMPLE_RATE

    def describe(self) -> dict[str, Any]:
        """What `voxfarm models` and the engine report about a checkpoint."""
        return {
            "name": self.name,
            "mode": self.mode,
            "speakers": self.speakers,
            "languages": self.languages,
            "sample_rate": self.sample_rate,
            "checksum": self.checksum,
            "source": self.source,
        }


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"model {name}: cannot read {path.name}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise BadInputError(f"model {name}: {path.name} is not a JSON object")
    return loaded


class ModelStore:
    """Resolves checkpoint names: a local models folder first, then ``models/<name>/`` in storage."""

    def __init__(
        self, models_dir: Path | None = None, storage: Storage | None = None, cache_dir: Path | None = None
    ) -> None:
        self.models_dir = models_dir
        self.storage = storage
        self.cache_dir = cache_dir

    def resolve(self, name: str, *, only: Sequence[str] | None = None) -> ModelFiles:
        """The checkpoint ``name``; ``only`` limits a download to those files (those it has)."""
        check_voice_id(name)
        if self.models_dir is not None and (self.models_dir / name / "config.json").is_file():
            return self._local(self.models_dir / name, name)
        if self.storage is not None and self.cache_dir is not None:
            return self._download(name, only)
        raise UnknownVoiceError(
            f"unknown model {name!r}; available: {', '.join(self.available()) or 'none'}. "
            "Publish a checkpoint folder with `voxfarm models push DIR --name NAME`, or put it in VOXFARM_MODELS_DIR."
        )

    def _local(self, directory: Path, name: str) -> ModelFiles:
        listed = directory / MANIFEST
        if listed.is_file():
            manifest = ModelManifest.from_json(listed.read_bytes(), str(listed))
            _verify_all(directory, manifest, manifest.files)
        else:
            manifest = scan(directory, name)
        return ModelFiles(name, directory, manifest, source=str(directory))

    def manifest(self, name: str) -> ModelManifest:
        if self.storage is None:
            raise UnknownVoiceError(f"unknown model {name!r}: no storage is configured")
        path = f"{MODELS_PREFIX}/{check_voice_id(name)}/{MANIFEST}"
        try:
            raw = self.storage.get_bytes(path)
        except NotFoundError:
            raise UnknownVoiceError(
                f"unknown model {name!r}; available: {', '.join(self.available()) or 'none'}. "
                "Publish it with `voxfarm models push DIR --name NAME`."
            ) from None
        return ModelManifest.from_json(raw, f"{self.storage.describe()}/{path}")

    def _download(self, name: str, only: Sequence[str] | None) -> ModelFiles:
        assert self.storage is not None and self.cache_dir is not None
        manifest = self.manifest(name)
        target = self.cache_dir / "models" / name / manifest.checksum[:16]
        wanted = {p: e for p, e in manifest.files.items() if only is None or p in only}
        target.mkdir(parents=True, exist_ok=True)
        with _locked(target / ".lock"):
            missing = {p: e for p, e in wanted.items() if not _matches(target / p, e)}
            for path, entry in missing.items():
                self._fetch(f"{MODELS_PREFIX}/{name}/{path}", target / path, entry)
            if missing:
                log.info(
                    "model %s: downloaded %d files (%.1f MB) from %s",
                    name,
                    len(missing),
                    sum(e.size for e in missing.values()) / 1e6,
                    self.storage.describe(),
                )
        return ModelFiles(name, target, manifest, source=self.storage.describe())

    def _fetch(self, source: str, target: Path, entry: ManifestEntry) -> None:
        assert self.storage is not None
        partial = target.with_name(f".{target.name}.partial")
        self.storage.get_file(source, partial)
        digest = file_sha256(partial)
        if digest != entry.sha256 or partial.stat().st_size != entry.size:
            partial.unlink(missing_ok=True)
            raise StorageError(
                f"{source}: checksum mismatch (sha256 {digest[:12]}, manifest says {entry.sha256[:12]}); "
                "the upload is incomplete or the file was replaced without `voxfarm models push`"
            )
        os.replace(partial, target)

    def available(self) -> list[str]:
        found: set[str] = set()
        if self.models_dir is not None and self.models_dir.is_dir():
            found.update(p.parent.name for p in self.models_dir.glob("*/config.json"))
        if self.storage is not None:
            try:
                for path in self.storage.list(MODELS_PREFIX):
                    parts = path.split("/")
                    if len(parts) == 3 and parts[2] == MANIFEST:
                        found.add(parts[1])
            except Exception:  # noqa: BLE001 - listing is a courtesy for messages
                pass
        return sorted(found)

    def publish(self, directory: Path, name: str) -> ModelManifest:
        """Upload a checkpoint folder; the manifest goes last, so a listed model is always complete."""
        if self.storage is None:
            raise BadInputError("publishing a model needs storage (VOXFARM_STORAGE_URL)")
        manifest = scan(directory, name)
        for path in manifest.files:
            self.storage.put_file(f"{MODELS_PREFIX}/{name}/{path}", directory / path)
        self.storage.put_bytes(f"{MODELS_PREFIX}/{name}/{MANIFEST}", manifest.to_json().encode(), "application/json")
        return manifest


def write_manifest(directory: Path, name: str) -> ModelManifest:
    """Write ``manifest.json`` into a local checkpoint folder, so workers verify it instead of hashing it."""
    manifest = scan(directory, name)
    (directory / MANIFEST).write_text(manifest.to_json())
    return manifest


def _matches(path: Path, entry: ManifestEntry) -> bool:
    return path.is_file() and path.stat().st_size == entry.size and file_sha256(path) == entry.sha256


def _verify_all(directory: Path, manifest: ModelManifest, files: dict[str, ManifestEntry]) -> None:
    for path, entry in files.items():
        if not _matches(directory / path, entry):
            raise BadInputError(
                f"model {manifest.name}: {path} in {directory} does not match its manifest; "
                "re-run `voxfarm models push` or delete the stale manifest.json"
            )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of one node (file locks are per host)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
