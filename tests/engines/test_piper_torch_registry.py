"""Engines by name: lazy imports, per-family defaults, and options each engine accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.engines import engine_spec
from shared.errors import ConfigError, UnknownEngineError
from shared.voices import VoiceFiles
from workers.devices import FAMILIES, DeviceBackend
from workers.engines import create_engine, default_engine_for

REPO = Path(__file__).resolve().parents[2]


def test_an_onnx_worker_never_imports_torch() -> None:
    script = (
        "import sys\n"
        "from shared.voices import bundled_voice\n"
        "from workers.devices import open_device\n"
        "from workers.engines import create_engine\n"
        "engine = create_engine('piper-onnx', bundled_voice(), open_device('cpu', needs_torch=False).backend)\n"
        "assert 'torch' not in sys.modules, 'piper-onnx pulled in torch'\n"
        "print(engine.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False, timeout=120
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "piper-onnx"


def test_every_family_has_a_default_engine_that_exists() -> None:
    defaults = {family: default_engine_for(family) for family in FAMILIES}

    assert defaults["cpu"] == "piper-onnx"  # measured: see docs/engines.md
    assert all(defaults[family] == "piper-torch" for family in FAMILIES if family != "cpu")
    assert all(engine_spec(name).name == name for name in defaults.values())
    with pytest.raises(ConfigError):
        default_engine_for("tpu")


def test_create_engine_builds_the_torch_engine_lazily_with_its_options(voice: VoiceFiles, cpu: DeviceBackend) -> None:
    engine = create_engine("piper-torch", voice, cpu, precision="bf16", compile=False)

    assert type(engine).__module__.startswith("workers.engines.piper_torch")
    assert (engine.name, engine.version) == ("piper-torch", engine_spec("piper-torch").version)
    assert engine.sample_rate == voice.sample_rate


def test_unknown_engines_and_options_an_engine_lacks_are_refused(voice: VoiceFiles, cpu: DeviceBackend) -> None:
    with pytest.raises(UnknownEngineError):
        create_engine("piper-tensorrt", voice, cpu)
    with pytest.raises(ConfigError, match="fp32"):
        create_engine("piper-onnx", voice, cpu, precision="bf16")
    with pytest.raises(ConfigError, match="precision"):
        create_engine("piper-torch", voice, cpu, precision="int4")
    with pytest.raises(ConfigError, match="does not support fp16"):
        create_engine("piper-torch", voice, cpu, precision="fp16")
