"""Loudness: BS.1770 measurement, true peak, and levelling a chapter to a target under a ceiling.

Everything streams in chunks over a 1-D array (a memory-mapped temporary
file in assembly), so an hour-long chapter never sits in memory as float64.

- Loudness is ITU-R BS.1770-4 integrated loudness (the EBU R128 measure):
  K-weighting (the same filter coefficients as ``pyloudnorm``, which the
  tests measure with), mean square over 400 ms blocks every 100 ms, an
  absolute gate at -70 LUFS and a relative gate 10 LU below the ungated
  mean.
- True peak is the largest magnitude of the signal oversampled 4x
  (a 65-tap polyphase FIR, 16 taps per phase), as BS.1770 Annex 2
  describes; it catches the inter-sample peaks that a sample peak misses
  and that a lossy encoder or a DAC turns into clipping.
- Levelling applies one gain per chapter to reach the loudness target. Where
  that would push true peaks over the ceiling, a look-ahead peak limiter
  lowers the gain around each peak only: the gain needed at every sample is
  taken as the minimum over a 20 ms window and then averaged over the same
  window, so the gain ramps over 20 ms and is, at every peak, no higher than
  that peak needs. Limiting takes some loudness away, so the chapter gain is
  raised again (secant steps, up to four rounds) until the measured
  output loudness is within 0.05 LU of the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import firwin, lfilter

OVERSAMPLE = 4
BLOCK_S = 0.400
HOP_S = 0.100
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
CHUNK = 1 << 18
"""Samples per processing chunk (about 12 s at 22050 Hz)."""
_TAPS_PER_PHASE = 16
_RESAMPLE_MARGIN = 64
"""Input samples of context each side of a chunk: more than the 4x FIR's reach (about 10)."""
LIMITER_WINDOW_S = 0.020
LIMITER_HEADROOM_DB = 0.1
"""The limiter aims this far under the ceiling: its gain ramps slightly reshape inter-sample peaks."""
MAX_GAIN_DB = 30.0
"""Never amplify (or cut) a chapter by more than this: a near-silent chapter is not turned into loud noise."""
MAX_ROUNDS = 4
TOLERANCE_LU = 0.05


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


@dataclass(frozen=True)
class LoudnessTarget:
    lufs: float = -18.0
    true_peak_dbtp: float = -1.0


@dataclass(frozen=True)
class LevelReport:
    """What levelling measured and did to one chapter."""

    input_lufs: float
    input_true_peak_dbtp: float
    gain_db: float
    limited_db: float
    """Deepest gain reduction of the limiter (0 = not needed)."""
    output_lufs: float
    output_true_peak_dbtp: float


class LoudnessMeter:
    """Streaming BS.1770-4 integrated loudness of one mono signal: ``add`` chunks, then ``integrated``."""

    def __init__(self, sample_rate: int) -> None:
        reference = pyloudnorm.Meter(sample_rate)
        self._stages = [
            (np.asarray(f.b, dtype=np.float64), np.asarray(f.a, dtype=np.float64), float(f.passband_gain))
            for f in reference._filters.values()
        ]
        self._state = [np.zeros(max(len(a), len(b)) - 1) for b, a, _ in self._stages]
        self._hop = round(HOP_S * sample_rate)
        self._per_block = round(BLOCK_S / HOP_S)
        self._hops: list[np.ndarray] = []
        self._partial = 0.0
        self._filled = 0

    def add(self, samples: np.ndarray) -> None:
        weighted = np.asarray(samples, dtype=np.float64)
        for position, (b, a, gain) in enumerate(self._stages):
            weighted, self._state[position] = lfilter(b, a, weighted, zi=self._state[position])
            if gain != 1.0:
                weighted = weighted * gain
        energy = weighted * weighted
        start = 0
        need = self._hop - self._filled
        if len(energy) < need:
            self._partial += float(energy.sum())
            self._filled += len(energy)
            return
        self._hops.append(np.array([self._partial + float(energy[:need].sum())]))
        start = need
        whole = (len(energy) - start) // self._hop
        if whole:
            self._hops.append(energy[start : start + whole * self._hop].reshape(whole, self._hop).sum(axis=1))
            start += whole * self._hop
        self._partial = float(energy[start:].sum())
        self._filled = len(energy) - start

    def integrated(self) -> float:
        """Integrated loudness in LUFS; -inf for silence or less than one 400 ms block."""
        hops = np.concatenate(self._hops) if self._hops else np.zeros(0)
        if len(hops) < self._per_block:
            return -math.inf
        window = np.ones(self._per_block)
        blocks = np.convolve(hops, window, mode="valid") / (self._per_block * self._hop)
        with np.errstate(divide="ignore"):
            loudness = -0.691 + 10.0 * np.log10(blocks)
        above = blocks[loudness >= ABSOLUTE_GATE_LUFS]
        if len(above) == 0:
            return -math.inf
        relative = -0.691 + 10.0 * math.log10(float(above.mean())) + RELATIVE_GATE_LU
        gated = blocks[(loudness >= ABSOLUTE_GATE_LUFS) & (loudness > relative)]
        if len(gated) == 0:
            return -math.inf
        return -0.691 + 10.0 * math.log10(float(gated.mean()))


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    meter = LoudnessMeter(sample_rate)
    for start in range(0, len(samples), CHUNK):
        meter.add(samples[start : start + CHUNK])
    return meter.integrated()


_INTERPOLATOR = firwin(_TAPS_PER_PHASE * OVERSAMPLE + 1, 1.0 / OVERSAMPLE, window=("kaiser", 8.0)) * OVERSAMPLE
"""A windowed-sinc interpolation filter, split into OVERSAMPLE phases (the BS.1770 Annex 2 structure).

Odd length, so its delay is a whole number of input samples and the phases
fall at 0, 1/4, 1/2 and 3/4 of a sample (phase 0 is the input itself)."""


def peak_envelope(samples: np.ndarray, start: int, end: int) -> np.ndarray:
    """Per input sample in [start, end): the largest magnitude among it and its 4x-oversampled neighbours.

    Each phase of the polyphase interpolator is one short convolution over
    the input, which is an order of magnitude cheaper than resampling the
    whole chunk; the envelope is only compared against the ceiling over
    20 ms windows, so the filter's half-sample alignment does not matter.
    """
    lo, hi = max(0, start - _RESAMPLE_MARGIN), min(len(samples), end + _RESAMPLE_MARGIN)
    part = np.asarray(samples[lo:hi], dtype=np.float64)
    if len(part) == 0:
        return np.zeros(0)
    envelope: np.ndarray = np.abs(part)
    for phase in range(1, OVERSAMPLE):
        interpolated = np.convolve(part, _INTERPOLATOR[phase::OVERSAMPLE], mode="same")
        np.maximum(envelope, np.abs(interpolated), out=envelope)
    return envelope[start - lo : end - lo]


def true_peak(samples: np.ndarray) -> float:
    """The 4x-oversampled true peak, linear (1.0 = 0 dBTP)."""
    peak = 0.0
    for start in range(0, len(samples), CHUNK):
        envelope = peak_envelope(samples, start, min(start + CHUNK, len(samples)))
        if len(envelope):
            peak = max(peak, float(envelope.max()))
    return peak


def true_peak_dbtp(samples: np.ndarray) -> float:
    return gain_to_db(true_peak(samples))


def _chunks(length: int, size: int = CHUNK) -> Iterator[tuple[int, int]]:
    for start in range(0, length, size):
        yield start, min(start + size, length)


class Leveller:
    """Levels one chapter: ``measure`` once, then ``write`` the levelled audio chunk by chunk."""

    def __init__(self, source: np.ndarray, sample_rate: int, target: LoudnessTarget, scratch: Path | None = None):
        self.source = source
        self.rate = sample_rate
        self.target = target
        self.window = 2 * round(LIMITER_WINDOW_S * sample_rate / 2) + 1
        self._ceiling = db_to_gain(target.true_peak_dbtp - LIMITER_HEADROOM_DB)
        if scratch is not None and len(source):
            self._envelope: np.ndarray = np.lib.format.open_memmap(
                scratch, mode="w+", dtype=np.float32, shape=(len(source),)
            )
        else:
            self._envelope = np.zeros(len(source), dtype=np.float32)
        self.input_lufs = -math.inf
        self.input_peak = 0.0

    def measure(self) -> None:
        """One pass: input loudness, and the oversampled peak envelope the limiter works from."""
        meter = LoudnessMeter(self.rate)
        for start, end in _chunks(len(self.source)):
            meter.add(self.source[start:end])
            envelope = peak_envelope(self.source, start, end)
            self._envelope[start:end] = envelope
            if len(envelope):
                self.input_peak = max(self.input_peak, float(envelope.max()))
        self.input_lufs = meter.integrated()

    def _limiter_gain(self, gain: float, start: int, end: int) -> np.ndarray:
        lo, hi = max(0, start - self.window), min(len(self.source), end + self.window)
        peaks = self._envelope[lo:hi].astype(np.float64) * gain
        wanted = np.minimum(1.0, self._ceiling / np.maximum(peaks, 1e-12))
        smooth: np.ndarray = uniform_filter1d(
            minimum_filter1d(wanted, self.window, mode="nearest"), self.window, mode="nearest"
        )
        reduction: np.ndarray = np.minimum(smooth[start - lo : end - lo], 1.0)
        return reduction

    def _chunk(self, gain: float, limit: bool, start: int, end: int) -> tuple[np.ndarray, np.ndarray | None]:
        block = np.asarray(self.source[start:end], dtype=np.float64) * gain
        if not limit:
            return block, None
        reduction = self._limiter_gain(gain, start, end)
        return block * reduction, reduction

    def _output_loudness(self, gain: float) -> float:
        meter = LoudnessMeter(self.rate)
        for start, end in _chunks(len(self.source)):
            meter.add(self._chunk(gain, True, start, end)[0])
        return meter.integrated()

    def plan_gain(self) -> tuple[float, bool]:
        """The chapter gain (dB) and whether the limiter is needed at that gain."""
        if not math.isfinite(self.input_lufs):
            return 0.0, self.input_peak > self._ceiling
        gain_db = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, self.target.lufs - self.input_lufs))
        if self.input_peak * db_to_gain(gain_db) <= self._ceiling:
            return gain_db, False
        # Limiting takes loudness away, more the higher the gain: solve gain -> output loudness by secant steps.
        tried: list[tuple[float, float]] = []
        for _ in range(MAX_ROUNDS):
            error = self._output_loudness(db_to_gain(gain_db)) - self.target.lufs
            if not math.isfinite(error) or abs(error) <= TOLERANCE_LU:
                break
            tried.append((gain_db, error))
            step = -error
            if len(tried) > 1:
                (g0, e0), (g1, e1) = tried[-2], tried[-1]
                if e1 != e0:
                    step = -e1 * (g1 - g0) / (e1 - e0)
            gain_db = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, gain_db + max(-6.0, min(6.0, step))))
        return gain_db, True

    def write(self, sink: Callable[[np.ndarray], None]) -> LevelReport:
        """Hand the levelled chapter to ``sink`` in order, chunk by chunk, measuring what goes out."""
        gain_db, limit = self.plan_gain()
        gain = db_to_gain(gain_db)
        meter = LoudnessMeter(self.rate)
        deepest = 1.0
        out_peak = 0.0
        length = len(self.source)
        for start, end in _chunks(length):
            # The chunk with some context each side, so its true peak is measured as in one piece.
            lo, hi = max(0, start - _RESAMPLE_MARGIN), min(length, end + _RESAMPLE_MARGIN)
            extended, reduction = self._chunk(gain, limit, lo, hi)
            extended32 = extended.astype(np.float32)
            block = extended32[start - lo : end - lo]
            if reduction is not None and len(reduction):
                deepest = min(deepest, float(reduction[start - lo : end - lo].min()))
            sink(block)
            meter.add(block)
            envelope = peak_envelope(extended32, start - lo, end - lo)
            if len(envelope):
                out_peak = max(out_peak, float(envelope.max()))
        return LevelReport(
            input_lufs=self.input_lufs,
            input_true_peak_dbtp=gain_to_db(self.input_peak),
            gain_db=gain_db,
            limited_db=-gain_to_db(deepest) if deepest < 1.0 else 0.0,
            output_lufs=meter.integrated(),
            output_true_peak_dbtp=gain_to_db(out_peak),
        )
