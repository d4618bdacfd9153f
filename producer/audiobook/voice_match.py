"""Loudness between the voices of one chapter: every voice brought to the narrator's loudness.

Different models (and speakers of one model) come out at different levels;
levelling the whole chapter afterwards would keep those differences, so a
character would shout or mumble next to the narrator. Each voice's speech is
measured on its own (BS.1770 integrated loudness over its segments) and
given the gain that matches it to the narrator's, in place in the chapter's
raw samples, before the chapter is levelled as one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from producer.audiobook.loudness import LoudnessMeter, db_to_gain

MAX_MATCH_DB = 12.0
"""A voice is never moved by more than this: a near-silent take must not be blown up into noise."""


@dataclass
class VoiceMatcher:
    """Collects where each voice speaks in a chapter, then matches their loudness to the reference voice's."""

    sample_rate: int
    reference: str
    meters: dict[str, LoudnessMeter] = field(default_factory=dict)
    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def add(self, voice: str, samples: np.ndarray, start: int) -> None:
        """A segment of ``voice`` written at sample ``start`` of the chapter."""
        if voice not in self.meters:
            self.meters[voice] = LoudnessMeter(self.sample_rate)
            self.ranges[voice] = []
        self.meters[voice].add(samples)
        self.ranges[voice].append((start, start + len(samples)))

    def gains_db(self) -> dict[str, float]:
        """The gain of every voice other than the reference; empty for a chapter of one voice."""
        if len(self.meters) < 2:
            return {}
        measured = {voice: meter.integrated() for voice, meter in self.meters.items()}
        reference = measured.get(self.reference, -math.inf)
        if not math.isfinite(reference):
            # The narrator does not speak in this chapter: match to the voice with the most speech.
            busiest = max(self.ranges, key=lambda v: sum(end - start for start, end in self.ranges[v]))
            reference = measured[busiest]
        if not math.isfinite(reference):
            return {}
        gains: dict[str, float] = {}
        for voice, loudness in measured.items():
            if math.isfinite(loudness):
                gains[voice] = round(max(-MAX_MATCH_DB, min(MAX_MATCH_DB, reference - loudness)), 2)
        return {voice: gain for voice, gain in gains.items() if gain != 0.0}

    def apply(self, raw: Path, gains: dict[str, float]) -> None:
        """Scale each voice's segments in the raw float32 chapter file."""
        if not gains:
            return
        samples = np.memmap(raw, dtype=np.float32, mode="r+")
        for voice, gain_db in gains.items():
            factor = np.float32(db_to_gain(gain_db))
            for start, end in self.ranges[voice]:
                samples[start:end] *= factor
        samples.flush()
        del samples
