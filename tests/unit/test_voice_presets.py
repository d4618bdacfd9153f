"""`voxfarm voices add --piper`: models checked, checksummed and stored; presets resolved with their settings."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from producer.piper_voices import add_piper_voice, check_model
from shared.errors import BadInputError, NotFoundError
from shared.presets import PresetRegistry
from shared.storage import LocalStorage
from shared.voices import DEFAULT_VOICE, VoiceRegistry, bundled_voice, file_sha256
from tests.support.tiny_voice import build_tiny_voice


def args(name: str, piper: str, **options: object) -> argparse.Namespace:
    defaults = {"speaker": None, "length_scale": None, "noise_scale": None, "noise_w": None}
    defaults |= {"language": None, "description": None}
    return argparse.Namespace(id=name, piper=piper, **{**defaults, **options})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_voice(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def registry(tmp_path: Path) -> VoiceRegistry:
    return VoiceRegistry(None, LocalStorage(tmp_path / "store"), tmp_path / "cache")


def test_a_multi_speaker_model_is_stored_and_its_preset_speaks_with_its_speaker(tiny: Path, registry: VoiceRegistry):
    added = add_piper_voice(args("ben", str(tiny), speaker="ben", length_scale=1.1, language="en"), registry)

    assert added.model == "tiny-trio" and added.params.speaker == 1 and added.params.length_scale == 1.1
    assert registry.storage is not None and registry.storage.exists("voices/tiny-trio.onnx")
    stored = json.loads(registry.storage.get_bytes("voices/ben.json"))
    assert stored["sha256"] == file_sha256(tiny) and stored["languages"] == ["en"]
    assert PresetRegistry(registry).available() == ["ben"]


def test_a_preset_of_the_bundled_voice_uploads_nothing(registry: VoiceRegistry):
    added = add_piper_voice(args("quick", DEFAULT_VOICE, length_scale=0.8), registry)
    assert added.files.checksum == bundled_voice().checksum and added.params.length_scale == 0.8
    assert registry.storage is not None and not registry.storage.exists(f"voices/{DEFAULT_VOICE}.onnx")


@pytest.mark.parametrize(
    ("speaker", "problem"), [("dan", "no speaker 'dan'; it has: ada, ben, cy"), ("7", "3 speakers")]
)
def test_a_speaker_the_model_does_not_have_is_refused(tiny: Path, registry: VoiceRegistry, speaker: str, problem: str):
    with pytest.raises(BadInputError, match=problem):
        add_piper_voice(args("x", str(tiny), speaker=speaker), registry)
    assert registry.storage is not None and not registry.storage.exists("voices/x.json")


def test_a_model_without_its_config_or_not_a_piper_export_is_refused(tmp_path: Path, tiny: Path):
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(tiny, lonely)
    with pytest.raises(NotFoundError, match=r"lonely\.onnx\.json is missing"):
        check_model(lonely)
    shutil.copy(tiny.with_name(tiny.name + ".json"), tmp_path / "lonely.onnx.json")
    config = json.loads((tmp_path / "lonely.onnx.json").read_text())
    config["num_speakers"] = 1
    (tmp_path / "lonely.onnx.json").write_text(json.dumps(config))
    check_model(lonely)
    (tmp_path / "text.onnx").write_text("not a model")
    shutil.copy(tmp_path / "lonely.onnx.json", tmp_path / "text.onnx.json")
    with pytest.raises(BadInputError, match="not a readable ONNX model"):
        check_model(tmp_path / "text.onnx")


def test_another_file_under_a_stored_models_name_is_refused(tmp_path: Path, tiny: Path, registry: VoiceRegistry):
    add_piper_voice(args("ben", str(tiny), speaker="ben"), registry)
    other = build_tiny_voice(tmp_path, seed=8)
    with pytest.raises(BadInputError, match="a different model is already stored as 'tiny-trio'"):
        add_piper_voice(args("cy", str(other), speaker="cy"), registry)


def test_a_preset_whose_model_was_replaced_is_refused(tiny: Path, registry: VoiceRegistry, tmp_path: Path):
    add_piper_voice(args("ben", str(tiny), speaker="ben"), registry)
    assert registry.storage is not None
    registry.storage.put_file("voices/tiny-trio.onnx", build_tiny_voice(tmp_path, seed=9))
    fresh = PresetRegistry(VoiceRegistry(None, registry.storage, tmp_path / "other-cache"))
    with pytest.raises(BadInputError, match="has changed since the voice was added"):
        fresh.resolve("ben")
