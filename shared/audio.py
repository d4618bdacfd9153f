"""Audio encoding: segments are stored as 16-bit FLAC, decoded back to float32 for assembly."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from shared.errors import BadInputError
from shared.flac import load_libflac

_LIBFLAC = load_libflac()
"""libFLAC where the system has it (the faster path: see ``shared.flac``); None: libsndfile encodes."""


def encode_flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """Clip to [-1, 1] and encode as 16-bit FLAC: libFLAC without its MD5 where installed, else libsndfile."""
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {samples.shape}")
    # libsndfile's own float conversion (scale by 32768, round to nearest even, clip), done here in one numpy
    # pass: the same bytes, for less CPU than its per-sample loop.
    pcm = np.clip(np.rint(np.clip(samples, -1.0, 1.0) * np.float32(32768)), -32768, 32767)
    if _LIBFLAC is not None:
        return _LIBFLAC.encode(pcm.astype(np.int32), sample_rate)
    pcm = pcm.astype(np.int16)
    buffer = io.BytesIO()
    sf.write(buffer, pcm, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def flac_encoder() -> str:
    """Which library encodes segments in this process: benchmarks report it beside their figures."""
    return "libFLAC without MD5" if _LIBFLAC is not None else "libsndfile"


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
