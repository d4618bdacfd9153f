"""What the control plane needs to know about each engine, without importing it.

The producer computes content keys and tokens but never loads a model, so
the engine's id, output version and frontend kind live here. Bump an
engine's ``version`` whenever a change alters its audio: every key changes
and old segments are re-rendered instead of silently reused.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import UnknownEngineError

SECONDS_PER_TOKEN = 0.0251
"""Seconds of audio per token id of the default voice (en_US-joe-medium, length_scale 1), measured by
synthesising chapters VI and X of The Time Machine one segment at a time: 944.5 s of audio from 37,562 ids
(0.0251 s/id; 0.0250-0.0255 in the 128-512 buckets, up to 0.029 for the shortest segments). A segment's
length_scale multiplies it; other voices speak at a similar rate per phoneme id."""


@dataclass(frozen=True)
class EngineSpec:
    name: str
    version: str
    frontend: str
    """Which frontend turns text into token ids: 'piper' (espeak phonemes), 'qwen3' (the checkpoint's BPE)."""
    seeded_noise: bool
    """Whether the engine draws its noise from the key's seed (reproducible output)."""
    needs_torch: bool
    """Whether a worker must initialise its card through PyTorch to run the engine."""
    per_checkpoint: bool = False
    """Voices are data that name a checkpoint (qwen3-tts): queues and batches are per checkpoint, so
    speakers, instructions and cloned voices of one checkpoint share a batch. Otherwise a voice is its
    own weights (Piper) and names its queues."""
    seconds_per_token: float = SECONDS_PER_TOKEN
    """Estimated audio seconds per token id at length_scale 1: what the scheduler shares out."""
    bench_only: bool = False
    """The engine does not say the text (the benchmark's stand-in): only `voxfarm bench` may plan with it."""

    def estimate_s(self, tokens: int, length_scale: float = 1.0) -> float:
        return tokens * length_scale * self.seconds_per_token


ENGINE_SPECS: dict[str, EngineSpec] = {
    "piper-onnx": EngineSpec("piper-onnx", "1", "piper", seeded_noise=False, needs_torch=False),
    "piper-torch": EngineSpec("piper-torch", "1", "piper", seeded_noise=True, needs_torch=True),
    "qwen3-tts": EngineSpec("qwen3-tts", "1", "qwen3", seeded_noise=True, needs_torch=True, per_checkpoint=True),
    # Real speech of the right length, instantly, to measure the farm's own cost (workers/engines/standin.py).
    # Its own version keeps its content keys apart from every real render's.
    "bench-standin": EngineSpec(
        "bench-standin", "standin-1", "piper", seeded_noise=False, needs_torch=False, bench_only=True
    ),
}


def engine_spec(name: str) -> EngineSpec:
    try:
        return ENGINE_SPECS[name]
    except KeyError:
        raise UnknownEngineError(f"unknown engine {name!r}; choose one of: {', '.join(sorted(ENGINE_SPECS))}") from None
