"""The benchmark stand-in: real Piper speech returned at once, to measure the farm's own cost per segment.

``voxfarm bench --engine-standin`` needs an engine that costs nothing, so
that what is left is the farm itself: messages, ledger, storage, the
quality gate, encoding and acknowledgement. At load this engine renders a
few real sentences once with the voice it is given (piper-onnx) into a
reel; each request is then answered at once with a slice of that reel as
long as the request's tokens would speak (``shared.engines`` estimate), so
the quality gate and the encoder see real speech of realistic lengths.

The audio does not say the request's text, so the engine is bench-only:
its spec is marked ``bench_only`` (the planner refuses it outside the
benchmark) and its own version keeps its content keys apart from real
renders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from shared.engines import engine_spec
from shared.frontend.piper import PiperFrontend
from shared.voices import VoiceFiles
from workers.devices.base import DeviceBackend
from workers.engines.base import Engine, EngineOutput, EngineRequest

STANDIN_ENGINE = "bench-standin"

REEL_SENTENCES = (
    "The boats came in late that evening, heavy with the day's catch.",
    "Gulls followed them all the way from the open water.",
    "On the quay the children counted the sails as they passed the lighthouse.",
    "An old man mended a net beside the harbour wall, humming a song his father had taught him.",
    "Before dawn the market filled with voices and the smell of bread.",
    "Nobody in the village could remember a winter as long as that one.",
)
"""What the reel says: rendered once per worker at load."""
GAP_S = 0.12
"""Silence between the reel's sentences, about a sentence pause."""


class BenchStandInEngine(Engine):
    """Answers every batch at once with real speech of the estimated length; bench-only (see the module)."""

    name = STANDIN_ENGINE

    def __init__(self, voice: VoiceFiles, backend: DeviceBackend | None = None, *, threads: int = 1) -> None:
        from workers.engines.piper_onnx import PiperOnnxEngine

        piper = PiperOnnxEngine(voice, backend, threads=threads)
        frontend = PiperFrontend(voice.config)
        self.sample_rate = piper.sample_rate
        self.device = piper.device
        gap = np.zeros(round(GAP_S * self.sample_rate), dtype=np.float32)
        pieces: list[np.ndarray] = []
        starts: list[int] = []
        position = 0
        for sentence in REEL_SENTENCES:
            clip = piper.synthesize([EngineRequest("0" * 64, frontend.ids(sentence))], 0).audio[0]
            starts.append(position)
            pieces += [clip, gap]
            position += len(clip) + len(gap)
        piper.close()
        reel = np.concatenate(pieces)
        self.reel_samples = len(reel)
        self._reel = np.concatenate([reel, reel])  # a slice that runs off the end wraps into the copy
        self._starts = starts
        self._spec = engine_spec(self.name)

    def clip_samples(self, request: EngineRequest) -> int:
        """Samples the request's tokens would speak, by the scheduler's own estimate."""
        seconds = self._spec.estimate_s(len(request.ids), request.params.length_scale)
        return max(round(seconds * self.sample_rate), 1)

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        audio = [self._clip(request) for request in batch]
        useful = sum(len(request.ids) for request in batch)
        return EngineOutput(audio=audio, padded_tokens=useful, useful_tokens=useful)

    def _clip(self, request: EngineRequest) -> np.ndarray:
        wanted = self.clip_samples(request)
        start = self._starts[
            int.from_bytes(hashlib.blake2b(request.key.encode(), digest_size=4).digest()) % len(self._starts)
        ]
        if wanted <= self.reel_samples:
            return self._reel[start : start + wanted]
        repeats = -(-(start + wanted) // len(self._reel))
        return np.tile(self._reel, repeats)[start : start + wanted]
