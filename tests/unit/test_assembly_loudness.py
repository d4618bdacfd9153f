"""Loudness and true peak: the streaming BS.1770 meter agrees with pyloudnorm, and levelling hits its target."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from producer.audiobook import loudness
from producer.audiobook.loudness import Leveller, LoudnessTarget, integrated_loudness, true_peak_dbtp
from producer.planner import default_params
from shared.frontend import create_frontend
from shared.voices import bundled_voice
from workers.engines.base import EngineRequest
from workers.engines.piper_onnx import PiperOnnxEngine

RATE = 22050
PARAGRAPH = (
    "The Time Traveller, for so it will be convenient to speak of him, was expounding a recondite matter to us. "
    "His grey eyes shone and twinkled, and his usually pale face was flushed and animated. "
    "Is it not? said the Psychologist. Clearly, the Time Traveller proceeded, any real body must have extension."
)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Real speech from the default voice: a paragraph of The Time Machine, sentences joined by short pauses."""
    voice = bundled_voice()
    engine = PiperOnnxEngine(voice)
    frontend = create_frontend("piper", voice.config, max_tokens=512)
    params = default_params(voice)
    parts = []
    for piece in frontend.segment_chapter([PARAGRAPH]):
        parts.append(engine.synthesize([EngineRequest("0" * 64, piece.ids, params)], 512).audio[0])
        parts.append(np.zeros(RATE // 4, dtype=np.float32))
    engine.close()
    return np.concatenate(parts)


def _independent_true_peak_db(samples: np.ndarray) -> float:
    """Checked with a finer (8x) oversampling than the 4x the leveller works with."""
    return float(20 * np.log10(np.abs(resample_poly(samples.astype(np.float64), 8, 1)).max()))


def _level(samples: np.ndarray, target: LoudnessTarget) -> tuple[np.ndarray, loudness.LevelReport]:
    leveller = Leveller(samples, RATE, target)
    leveller.measure()
    out: list[np.ndarray] = []
    report = leveller.write(out.append)
    return np.concatenate(out), report


def test_the_streaming_meter_agrees_with_pyloudnorm_on_real_speech(speech: np.ndarray) -> None:
    reference = pyloudnorm.Meter(RATE).integrated_loudness(speech.astype(np.float64))
    assert integrated_loudness(speech, RATE) == pytest.approx(reference, abs=0.05)


def test_a_full_scale_997_hz_sine_reads_minus_3_lufs_as_bs1770_specifies() -> None:
    t = np.arange(48000 * 5) / 48000
    sine = np.sin(2 * np.pi * 997 * t)
    assert integrated_loudness(sine, 48000) == pytest.approx(-3.01, abs=0.05)


def test_silence_measures_minus_infinity() -> None:
    assert integrated_loudness(np.zeros(RATE * 3, dtype=np.float32), RATE) == -np.inf


def test_true_peak_sees_the_inter_sample_peak_that_the_sample_peak_misses() -> None:
    # A quarter-rate sine sampled at 45 degrees: every sample is at 0.707 of the real peak.
    n = np.arange(RATE)
    fade = np.minimum(1.0, np.minimum(n, n[::-1]) / 2000)  # no edge transients: the peak is the sine's own
    sine = 0.9 * np.sin(2 * np.pi * n / 4 + np.pi / 4) * fade
    sample_peak_db = 20 * np.log10(np.abs(sine).max())
    assert sample_peak_db == pytest.approx(20 * np.log10(0.9 * 0.7071), abs=0.05)
    assert true_peak_dbtp(sine) == pytest.approx(20 * np.log10(0.9), abs=0.1)


def test_levelling_real_speech_reaches_the_target_and_keeps_true_peaks_under_the_ceiling(speech: np.ndarray) -> None:
    out, report = _level(speech, LoudnessTarget(-18.0, -1.0))
    assert report.input_lufs < -22  # the voice is quiet: it needs gain, and the limiter works
    assert report.limited_db > 0
    assert pyloudnorm.Meter(RATE).integrated_loudness(out.astype(np.float64)) == pytest.approx(-18.0, abs=0.1)
    assert report.output_lufs == pytest.approx(-18.0, abs=0.1)
    assert _independent_true_peak_db(out) <= -1.0
    assert len(out) == len(speech)


def test_a_gain_that_fits_under_the_ceiling_is_applied_exactly_without_limiting(speech: np.ndarray) -> None:
    out, report = _level(speech, LoudnessTarget(-30.0, -1.0))
    assert report.limited_db == 0.0
    gain = 10 ** (report.gain_db / 20)
    np.testing.assert_allclose(out, speech * gain, rtol=1e-5, atol=1e-7)
    # Not exactly -30: blocks of the pauses fall under the absolute -70 LUFS gate as the level drops.
    assert report.output_lufs == pytest.approx(-30.0, abs=0.05)


def test_levelling_in_small_chunks_gives_the_same_samples_as_in_one_piece(
    speech: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, whole_report = _level(speech, LoudnessTarget(-16.0, -1.5))
    monkeypatch.setattr(loudness, "CHUNK", 5000)
    chunked, chunked_report = _level(speech, LoudnessTarget(-16.0, -1.5))
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert chunked_report.output_lufs == pytest.approx(whole_report.output_lufs, abs=1e-3)
    assert chunked_report.output_true_peak_dbtp == pytest.approx(whole_report.output_true_peak_dbtp, abs=1e-3)


def test_silence_is_left_as_it_is_rather_than_amplified() -> None:
    quiet = np.zeros(RATE * 2, dtype=np.float32)
    out, report = _level(quiet, LoudnessTarget())
    assert report.gain_db == 0.0 and not np.any(out)
