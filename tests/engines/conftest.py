"""Fixtures shared by the engine tests: the bundled voice, its phonemizer and loaded engines.

Engines are loaded once per test session: loading reads a 63 MB voice file.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.voices import VoiceFiles, bundled_voice
from workers.devices import DeviceBackend, open_device
from workers.engines.piper_onnx import PiperOnnxEngine
from workers.engines.piper_torch import PiperTorchEngine


@pytest.fixture(scope="session")
def voice() -> VoiceFiles:
    return bundled_voice()


@pytest.fixture(scope="session")
def phonemize(voice: VoiceFiles) -> Callable[[str], list[int]]:
    """Text -> one token id sequence (sentences joined, so long segments can be built from short ones)."""
    from piper import PiperVoice

    piper_voice = PiperVoice.load(voice.model_path, config_path=voice.config_path)

    def ids(text: str) -> list[int]:
        sentences = piper_voice.phonemize(text)
        phonemes = [p for i, sentence in enumerate(sentences) for p in ([" "] if i else []) + sentence]
        return list(piper_voice.phonemes_to_ids(phonemes))

    return ids


@pytest.fixture(scope="session")
def cpu() -> DeviceBackend:
    """The host's CPU, opened once as a worker opens its card."""
    return open_device("cpu").backend


@pytest.fixture(scope="session")
def onnx_engine(voice: VoiceFiles, cpu: DeviceBackend) -> PiperOnnxEngine:
    return PiperOnnxEngine(voice, cpu, threads=1)


@pytest.fixture(scope="session")
def torch_engine(voice: VoiceFiles, cpu: DeviceBackend) -> PiperTorchEngine:
    return PiperTorchEngine(voice, cpu, compile=False, threads=1)
