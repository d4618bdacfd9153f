"""Audio encoding: segments are stored as 16-bit FLAC, decoded back to float32 for assembly."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from shared.errors import BadInputError


def encode_flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """Clip to [-1, 1] and encode as 16-bit FLAC (lossless for what we store)."""
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {samples.shape}")
    # libsndfile's own float conversion (scale by 32768, round to nearest even, clip), done here in one numpy
    # pass: the same bytes, for less CPU than its per-sample loop.
    pcm = np.clip(np.rint(np.clip(samples, -1.0, 1.0) * np.float32(32768)), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    sf.write(buffer, pcm, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode FLAC or WAV bytes into float32 mono samples and their rate."""
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise BadInputError(f"not a readable audio file: {exc}") from exc
    return samples.mean(axis=1).astype(np.float32), int(rate)


def silence(milliseconds: int, sample_rate: int) -> np.ndarray:
    return np.zeros(round(sample_rate * milliseconds / 1000.0), dtype=np.float32)


def duration_s(samples: np.ndarray, sample_rate: int) -> float:
    return float(len(samples)) / float(sample_rate)
