"""Resampling a segment to its chapter's rate: voices of one cast may speak at different rates.

Qwen3-TTS decodes at 24 kHz, most Piper voices at 22.05 kHz and some at
16 kHz; a chapter is written at one rate (its narrator's), so every other
voice's segments are converted on the way in. A polyphase filter
(``scipy.signal.resample_poly``, a Kaiser-windowed FIR) keeps the band
below the lower Nyquist frequency clean and adds no aliasing; the length
comes out as ``ceil(n * up / down)``, so durations are kept to a sample.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import resample_poly


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """``samples`` at ``source_rate`` as float32 samples at ``target_rate`` (the same array when equal)."""
    if source_rate == target_rate or len(samples) == 0:
        return samples
    common = math.gcd(source_rate, target_rate)
    converted = resample_poly(samples, target_rate // common, source_rate // common)
    return np.asarray(converted, dtype=np.float32)
