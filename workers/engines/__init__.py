"""Engine registry: build an engine by name, importing its module only then.

The producer and onnxruntime-only workers import this package without
pulling in PyTorch: ``piper-torch`` (and torch) load only when asked for,
and ``qwen3-tts`` (torch, transformers, qwen_tts: its own environment) too.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import ConfigError, UnknownEngineError

if TYPE_CHECKING:
    from shared.qwen.store import ModelFiles
    from shared.voices import VoiceFiles
    from workers.devices.base import DeviceBackend
    from workers.engines.base import Engine
    from workers.engines.qwen3.prompts import PromptStore

ENGINES: dict[str, tuple[str, str]] = {
    "piper-onnx": ("workers.engines.piper_onnx", "PiperOnnxEngine"),
    "piper-torch": ("workers.engines.piper_torch", "PiperTorchEngine"),
    "qwen3-tts": ("workers.engines.qwen3.engine", "Qwen3TTSEngine"),
    "bench-standin": ("workers.engines.standin", "BenchStandInEngine"),
}

#: The engine a worker uses when none is configured, per device family. On
#: the CPU, onnxruntime was measured faster than the PyTorch port both eager
#: and compiled, one thread, batch 1 and batched (docs/engines.md,
#: ``python -m workers.tools.bench_engines``). On accelerators the PyTorch port is
#: the one engine that runs on every family (onnxruntime has no MLU or
#: Kunlunxin provider, and its CANN/MIGraphX providers are separate builds).
DEFAULT_ENGINES: dict[str, str] = {
    "cpu": "piper-onnx",
    "cuda": "piper-torch",
    "dcu": "piper-torch",
    "npu": "piper-torch",
    "mlu": "piper-torch",
    "kunlunxin": "piper-torch",
}


def default_engine_for(family: str) -> str:
    """The engine to run on a device family when the settings name none."""
    try:
        return DEFAULT_ENGINES[family]
    except KeyError:
        raise ConfigError(f"unknown device family {family!r}; use one of: {', '.join(DEFAULT_ENGINES)}") from None


def create_engine(
    name: str,
    voice: VoiceFiles | ModelFiles,
    backend: DeviceBackend,
    *,
    threads: int = 1,
    cache_dir: Path | None = None,
    precision: str = "fp32",
    compile: bool | None = None,
    prompts: PromptStore | None = None,
) -> Engine:
    """Load ``voice`` (a Piper voice, or a Qwen3-TTS checkpoint) with engine ``name`` onto an opened card.

    ``backend`` is the card ``workers.devices.open_device`` opened: engines
    run on it and never open a device themselves.
    """
    try:
        module_name, class_name = ENGINES[name]
    except KeyError:
        raise UnknownEngineError(f"unknown engine {name!r}; choose one of: {', '.join(sorted(ENGINES))}") from None
    from shared.qwen.store import ModelFiles

    if (name == "qwen3-tts") != isinstance(voice, ModelFiles):
        raise ConfigError(f"engine {name} cannot load {type(voice).__name__}: qwen3-tts takes a checkpoint")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    if name == "qwen3-tts":
        if compile:
            raise ConfigError("qwen3-tts runs eagerly (Hugging Face generate); it has no compiled graphs")
        qwen: Engine = engine_class(voice, backend, threads=threads, precision=precision, prompts=prompts)
        return qwen
    if name in ("piper-onnx", "bench-standin"):
        if precision != "fp32" or compile:
            raise ConfigError("piper-onnx runs the voice as exported (fp32, no compile); use piper-torch for those")
        engine: Engine = engine_class(voice, backend, threads=threads)
        return engine
    engine = engine_class(voice, backend, threads=threads, cache_dir=cache_dir, precision=precision, compile=compile)
    return engine
