"""Segments are encoded from 16-bit samples converted in numpy: the very bytes libsndfile writes from floats."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from shared.audio import decode_audio, encode_flac

RATE = 22050


def _libsndfile_flac(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def test_encoding_matches_libsndfiles_own_float_conversion_byte_for_byte() -> None:
    rng = np.random.default_rng(7)
    edges = np.array(
        [1.5, -1.5, 1.0, -1.0, 0.5 / 32768, 1.5 / 32768, 2.5 / 32768, -0.5 / 32768, -2.5 / 32768, 0.99999],
        dtype=np.float32,
    )
    for scale in (0.001, 0.3, 1.0, 4.0):
        samples = np.concatenate([edges, (rng.standard_normal(RATE) * scale).astype(np.float32)])
        assert encode_flac(samples, RATE) == _libsndfile_flac(samples), scale


def test_encoded_segments_decode_to_the_clipped_samples_within_one_step() -> None:
    samples = np.linspace(-1.2, 1.2, RATE, dtype=np.float32)

    decoded, rate = decode_audio(encode_flac(samples, RATE))

    assert rate == RATE
    assert np.max(np.abs(decoded - np.clip(samples, -1.0, 1.0))) <= 1.0 / 32768 + 1e-7
