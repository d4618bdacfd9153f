"""Fixtures of the Qwen3-TTS tests: tiny random-weight checkpoints of each mode, built once per session.

These tests run in the Qwen environment (.venv-qwen, `.ci/test-qwen`), where
torch 2.9.1, torchaudio, transformers 4.57.3 and qwen_tts are installed;
the worker processes they start run on that environment's Python too.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from shared.qwen.store import ModelStore, write_manifest
from tests.support.qwen_fixture import build_tiny_model

MODES = ("custom_voice", "voice_design", "voice_clone")
#: Checkpoint names in the model store, one per mode (as real ones are: one mode per checkpoint).
CHECKPOINTS = {"custom_voice": "tiny-custom", "voice_design": "tiny-design", "voice_clone": "tiny-base"}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with one tiny checkpoint per mode (``<dir>/<name>/``), each with its manifest."""
    root = tmp_path_factory.mktemp("qwen-models")
    for seed, mode in enumerate(MODES):
        name = CHECKPOINTS[mode]
        build_tiny_model(root / name, mode, seed=seed)
        write_manifest(root / name, name)
    return root


@pytest.fixture(scope="session")
def local_models(tiny_models: Path) -> ModelStore:
    return ModelStore(models_dir=tiny_models)


def reference_wav(seconds: float = 1.5, pitch_hz: float = 180.0) -> bytes:
    """A short synthetic 'recording' to clone (16 kHz, so the engine resamples it as it would a real one)."""
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.2 * np.sin(2 * np.pi * pitch_hz * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
