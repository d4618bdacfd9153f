"""Segments are 16-bit FLAC: libFLAC without its MD5 where installed, else libsndfile's very bytes."""

from __future__ import annotations

import ctypes.util
import io
import threading

import numpy as np
import pytest
import soundfile as sf

import shared.audio
import shared.flac
from shared.audio import decode_audio, encode_flac

RATE = 22050
EDGES = np.array(
    [1.5, -1.5, 1.0, -1.0, 0.5 / 32768, 1.5 / 32768, 2.5 / 32768, -0.5 / 32768, -2.5 / 32768, 0.99999],
    dtype=np.float32,
)


def _libsndfile_flac(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _pcm(data: bytes) -> np.ndarray:
    samples, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == RATE
    return np.asarray(samples)


def _test_signals() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    scales = (0.001, 0.3, 1.0, 4.0)
    return [np.concatenate([EDGES, (rng.standard_normal(RATE) * scale).astype(np.float32)]) for scale in scales]


def test_without_libflac_encoding_matches_libsndfiles_own_float_conversion_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared.audio, "_LIBFLAC", None)
    for samples in _test_signals():
        assert encode_flac(samples, RATE) == _libsndfile_flac(samples)


def test_the_ci_machine_encodes_with_libflac() -> None:
    # .ci/services installs libFLAC; without it every test below would test the fallback twice.
    assert shared.audio._LIBFLAC is not None


def test_libflac_stores_the_samples_libsndfile_would() -> None:
    for samples in [*_test_signals(), np.zeros(1, dtype=np.float32), np.full(70_001, 0.25, dtype=np.float32)]:
        assert np.array_equal(_pcm(encode_flac(samples, RATE)), _pcm(_libsndfile_flac(samples)))


def test_libflac_header_is_complete_and_leaves_the_md5_unset() -> None:
    samples = _test_signals()[1]

    data = encode_flac(samples, RATE)

    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0 and int.from_bytes(data[5:8]) == 34  # STREAMINFO first
    info = data[8:42]
    min_frame, max_frame = int.from_bytes(info[4:7]), int.from_bytes(info[7:10])
    assert 0 < min_frame <= max_frame  # filled in at the end: libFLAC went back to the header
    packed = int.from_bytes(info[10:18])
    assert packed >> 44 == RATE and (packed >> 41) & 0x7 == 0 and (packed >> 36) & 0x1F == 15
    assert packed & ((1 << 36) - 1) == len(samples)
    assert info[18:34] == bytes(16)  # "not computed": the fifth of libFLAC's work segments do without


def test_threads_encoding_at_once_each_get_their_own_file() -> None:
    rng = np.random.default_rng(3)
    inputs = [(rng.standard_normal(RATE * 2) * 0.2).astype(np.float32) for _ in range(6)]
    results: dict[int, list[bytes]] = {index: [] for index in range(len(inputs))}

    def encode_many(index: int) -> None:
        for _ in range(10):
            results[index].append(encode_flac(inputs[index], RATE))

    threads = [threading.Thread(target=encode_many, args=(index,)) for index in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for index, samples in enumerate(inputs):
        expected = _pcm(_libsndfile_flac(samples))
        assert all(np.array_equal(_pcm(data), expected) for data in results[index]), index


def test_an_impossible_sample_rate_is_refused_with_the_rate_named() -> None:
    with pytest.raises(ValueError, match="sample rate 0"):
        encode_flac(np.zeros(100, dtype=np.float32), 0)


def test_encoded_segments_decode_to_the_clipped_samples_within_one_step() -> None:
    samples = np.linspace(-1.2, 1.2, RATE, dtype=np.float32)

    decoded, rate = decode_audio(encode_flac(samples, RATE))

    assert rate == RATE
    assert np.max(np.abs(decoded - np.clip(samples, -1.0, 1.0))) <= 1.0 / 32768 + 1e-7


def test_without_a_loadable_libflac_the_loader_answers_none_for_libsndfile_to_encode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared.flac, "SONAMES", ("libFLAC.so.0-missing",))
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert shared.flac.load_libflac() is None

    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libc.so.6")  # loads, but no FLAC calls
    assert shared.flac.load_libflac() is None
