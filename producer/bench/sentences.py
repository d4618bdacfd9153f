"""Which of a book's sentences the padding model sees, and their frames from the voice's duration predictor.

The duration stage costs tens of milliseconds per sentence on a CPU core, so
a long book is measured on a seeded sample instead of every sentence: runs
of consecutive sentences (the batcher sees neighbours, as it does in a real
book), picked at random and kept in book order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.voices import VoiceFiles
from workers.engines.base import EngineRequest

SAMPLE_SEGMENTS = 2000
"""Default sample size: a whole short novel (The Time Machine has 1,958 segments), about two minutes on a CPU."""
SAMPLE_SEED = 1
RUN_LENGTH = 200
"""Consecutive sentences per sampled run: the batcher's window (twice a call of 8 x 16) spans about one run."""


@dataclass(frozen=True)
class Sample:
    """The sentences measured, by index into the book's segments, in book order."""

    indices: list[int]
    book_segments: int
    seed: int
    run_length: int

    @property
    def whole_book(self) -> bool:
        return len(self.indices) == self.book_segments

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "segments": len(self.indices),
            "book_segments": self.book_segments,
            "seed": self.seed,
            "run_length": self.run_length,
            "whole_book": self.whole_book,
        }


def sample_segments(total: int, size: int, seed: int = SAMPLE_SEED, run_length: int = RUN_LENGTH) -> Sample:
    """Runs of ``run_length`` consecutive segments chosen with ``seed``: about ``size`` of ``total`` (0: all)."""
    if size <= 0 or size >= total:
        return Sample(list(range(total)), total, seed, run_length)
    runs = math.ceil(total / run_length)
    chosen = sorted(random.Random(seed).sample(range(runs), min(runs, math.ceil(size / run_length))))
    indices = [i for run in chosen for i in range(run * run_length, min((run + 1) * run_length, total))]
    return Sample(indices, total, seed, run_length)


def measure_frames(voice: VoiceFiles, ids: Sequence[Sequence[int]], params: Any) -> list[int]:
    """Frames per segment from the voice's own duration predictor (the PyTorch port's first stage).

    One thread: on a shared two-core machine more intra-op threads measured
    twice as slow, so a long book is sampled instead.
    """
    from workers.devices import open_device
    from workers.engines.piper_torch import PiperTorchEngine

    engine = PiperTorchEngine(voice, open_device("cpu").backend, compile=False)
    frames = [0] * len(ids)
    by_length = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths: little padding
    for start in range(0, len(by_length), 16):
        chunk = by_length[start : start + 16]
        requests = [EngineRequest(key=f"{i:064x}", ids=list(ids[i]), params=params) for i in chunk]
        for index, count in zip(chunk, engine.durations(requests), strict=True):
            frames[index] = count
    return frames
