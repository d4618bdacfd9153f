"""The engine seam: turn a batch of token sequences into per-item audio.

An engine is loaded once per worker process onto one device, warmed up over
the shapes it will serve, and then called with batches padded to a bucket
edge. It knows nothing about queues or storage; it returns plain records
that the batcher and the metrics module turn into acknowledgements and
Prometheus series.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from shared.engines import engine_spec
from shared.quality import DEFAULT_LIMITS, QualityLimits
from shared.schema import SynthesisParams, VoiceConditioning

SPEECH_LIKE_IDS = (20, 0, 14, 0, 31, 0, 32, 0, 59, 0, 26, 0, 3, 0)
"""Piper phoneme ids interleaved with pads, as a real sentence has them: the canary request and the synthetic
requests of warm-up and tuning are made of it."""


@dataclass(frozen=True)
class EngineRequest:
    """One item of a batch; ``key`` seeds the noise where the engine allows it."""

    key: str
    ids: Sequence[int]
    params: SynthesisParams = field(default_factory=SynthesisParams)
    conditioning: VoiceConditioning | None = None
    """Speaker, instruction or cloned voice, for engines that take them (qwen3-tts)."""


@dataclass
class EngineOutput:
    """Audio per item (float32 mono in [-1, 1], trimmed to its own length) and what it cost."""

    audio: list[np.ndarray]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds per stage, e.g. encoder, duration, flow, vocoder."""
    padded_tokens: int = 0
    useful_tokens: int = 0
    padded_frames: int = 0
    useful_frames: int = 0


@dataclass(frozen=True)
class WarmupRecord:
    """One shape run during warm-up and how long its first (compiling) and steady calls took."""

    tokens: int
    batch: int
    frames: int | None
    first_s: float
    steady_s: float
    eager_s: float | None = None
    """The same shape run eagerly, where the engine compiles: what the compile bought."""


class Engine(ABC):
    """A loaded model on one device."""

    name: ClassVar[str]
    sample_rate: int
    quality_limits: ClassVar[QualityLimits] = DEFAULT_LIMITS
    """What the quality gate checks this engine's takes against (the defaults were measured on Piper)."""

    @property
    def version(self) -> str:
        """The output version, declared once in ``shared.engines`` because content keys include it."""
        return engine_spec(self.name).version

    @abstractmethod
    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        """Synthesise a batch whose token sequences are padded to ``pad_to``.

        Raises EngineError (retryable), DeviceOutOfMemoryError (retry smaller)
        or DeviceError (fatal: the worker exits).
        """

    sorts_by_frames: ClassVar[bool] = False
    """Whether the engine can decode one call in frame-sorted batches (see ``sort_by_frames``)."""

    def warmup(self, shapes: Iterable[tuple[int, int]]) -> list[WarmupRecord]:
        """Run every (tokens, batch) shape once so the first real batch pays no compile cost."""
        return []

    def sort_by_frames(self, decode_sizes: Mapping[int, int], call_sizes: Mapping[int, int]) -> list[WarmupRecord]:
        """Take calls of up to ``call_sizes[edge]`` items and decode them in frame-sorted batches of
        ``decode_sizes[edge]``; returns the warm-up of the larger first stage. Only where ``sorts_by_frames``."""
        raise NotImplementedError(f"{self.name} decodes each call as one batch")

    def canary_request(self) -> EngineRequest:
        """A known-good request: if this fails too, the engine or card is broken, not the segment."""
        return EngineRequest(key="0" * 64, ids=[1, *SPEECH_LIKE_IDS, 2])

    def close(self) -> None:  # noqa: B027 - optional hook: most engines hold nothing to release
        """Release the device; called once at worker exit."""
