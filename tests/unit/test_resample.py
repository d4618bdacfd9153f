"""Assembly's resampler: a segment's length and pitch kept across rates, nothing folded back from above Nyquist."""

from __future__ import annotations

import numpy as np
import pytest

from producer.audiobook.resample import resample


def tone(hz: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(("source", "target"), [(16000, 22050), (24000, 22050), (22050, 24000), (22050, 16000)])
def test_a_tone_keeps_its_pitch_and_its_duration(source: int, target: int) -> None:
    samples = tone(440.0, source, 1.3)
    converted = resample(samples, source, target)
    assert converted.dtype == np.float32
    assert len(converted) == -(-len(samples) * target // source)
    assert abs(peak_hz(converted, target) - 440.0) < 2.0
    middle = converted[target // 10 : -target // 10]
    assert abs(float(np.sqrt(np.mean(middle**2))) - 0.5 / np.sqrt(2)) < 0.01, "level kept"


def test_what_the_lower_rate_cannot_hold_is_removed_not_aliased() -> None:
    # 10 kHz fits under 24 kHz's Nyquist but not 16 kHz's: naive decimation would fold it to 6 kHz.
    converted = resample(tone(10000.0, 24000), 24000, 16000)
    assert float(np.sqrt(np.mean(converted[1600:-1600] ** 2))) < 0.01


def test_the_same_rate_is_left_alone() -> None:
    samples = tone(440.0, 22050)
    assert resample(samples, 22050, 22050) is samples
