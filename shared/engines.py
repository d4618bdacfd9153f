"""What the control plane needs to know about each engine, without importing it.

The producer computes content keys and tokens but never loads a model, so
the engine's id, output version and frontend kind live here. Bump an
engine's ``version`` whenever a change alters its audio: every key changes
and old segments are re-rendered instead of silently reused.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import UnknownEngineError


@dataclass(frozen=True)
class EngineSpec:
    name: str
    version: str
    frontend: str
    """Which frontend turns text into token ids: 'piper' (espeak phonemes)."""
    seeded_noise: bool
    """Whether the engine draws its noise from the key's seed (reproducible output)."""
    needs_torch: bool
    """Whether a worker must initialise its card through PyTorch to run the engine."""


ENGINE_SPECS: dict[str, EngineSpec] = {
    "piper-onnx": EngineSpec("piper-onnx", "1", "piper", seeded_noise=False, needs_torch=False),
    "piper-torch": EngineSpec("piper-torch", "1", "piper", seeded_noise=True, needs_torch=True),
}


def engine_spec(name: str) -> EngineSpec:
    try:
        return ENGINE_SPECS[name]
    except KeyError:
        raise UnknownEngineError(f"unknown engine {name!r}; choose one of: {', '.join(sorted(ENGINE_SPECS))}") from None
