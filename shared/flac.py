"""16-bit mono FLAC through libFLAC itself, without the MD5 signature libsndfile always computes.

Encoding is two thirds of what the farm spends on a segment besides the
engine, and libsndfile's FLAC writer offers no way to skip the MD5 of the
decoded audio, a fifth of libFLAC's work. Segments do not need it: FLAC
defines an all-zero signature as "not computed", every decoder accepts it,
and a segment's integrity is its content key and the storage's own
checksums. So where the system's libFLAC can be loaded (Debian and Ubuntu's
``libflac12``, a dependency of libsndfile; the worker images install it),
segments are encoded here with the compression level libsndfile uses (5):
the same frames and the same size, for less CPU. Elsewhere
``shared.audio.encode_flac`` falls back to libsndfile. Either way the stored
samples are the same.

libFLAC calls back into Python once per frame (about 23 times for 4 s of
speech) to hand over the bytes; the callbacks are made once per process and
find their output through a thread-local, so encoding threads do not share
a buffer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np

COMPRESSION_LEVEL = 5
"""libsndfile's own default: the same compression ratio as segments encoded before."""

_WRITE_OK, _WRITE_FATAL = 0, 1
_SEEK_OK = 0
_TELL_OK = 0
_INIT_OK = 0

_Encoder = ctypes.c_void_p
_WriteCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, _Encoder, ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t, ctypes.c_uint32, ctypes.c_uint32,
    ctypes.c_void_p,
)  # fmt: skip
_SeekCallback = ctypes.CFUNCTYPE(ctypes.c_int, _Encoder, ctypes.c_uint64, ctypes.c_void_p)
_TellCallback = ctypes.CFUNCTYPE(ctypes.c_int, _Encoder, ctypes.POINTER(ctypes.c_uint64), ctypes.c_void_p)


class _Output(threading.local):
    """The file being written on this thread: its bytes and libFLAC's position in them."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.position = 0


_output = _Output()


def _write(
    _encoder: int, buffer: ctypes._Pointer[ctypes.c_ubyte], size: int, _samples: int, _frame: int, _data: int
) -> int:
    try:
        chunk = ctypes.string_at(buffer, size)
        data, position = _output.data, _output.position
        if position == len(data):
            data += chunk
        else:  # finish() going back to fill in the stream's header
            data[position : position + size] = chunk
        _output.position = position + size
    except MemoryError:  # ctypes would print it and answer 0 ("written"): libFLAC must hear of it
        return _WRITE_FATAL
    return _WRITE_OK


def _seek(_encoder: int, offset: int, _data: int) -> int:
    _output.position = offset
    return _SEEK_OK


def _tell(_encoder: int, offset: ctypes._Pointer[ctypes.c_uint64], _data: int) -> int:
    offset[0] = _output.position
    return _TELL_OK


class LibFlac:
    """The few libFLAC stream-encoder calls a segment needs, bound with ctypes."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._lib = library
        library.FLAC__stream_encoder_new.restype = _Encoder
        library.FLAC__stream_encoder_new.argtypes = []
        for setting in ("channels", "bits_per_sample", "sample_rate", "compression_level", "do_md5"):
            function = getattr(library, f"FLAC__stream_encoder_set_{setting}")
            function.argtypes = [_Encoder, ctypes.c_uint32]
            function.restype = ctypes.c_int
        library.FLAC__stream_encoder_set_total_samples_estimate.argtypes = [_Encoder, ctypes.c_uint64]
        library.FLAC__stream_encoder_init_stream.argtypes = [
            _Encoder, _WriteCallback, _SeekCallback, _TellCallback, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        library.FLAC__stream_encoder_init_stream.restype = ctypes.c_int
        library.FLAC__stream_encoder_process_interleaved.argtypes = [_Encoder, ctypes.c_void_p, ctypes.c_uint32]
        library.FLAC__stream_encoder_process_interleaved.restype = ctypes.c_int
        library.FLAC__stream_encoder_finish.argtypes = [_Encoder]
        library.FLAC__stream_encoder_finish.restype = ctypes.c_int
        library.FLAC__stream_encoder_delete.argtypes = [_Encoder]
        library.FLAC__stream_encoder_delete.restype = None
        # Made once: libFLAC keeps only their addresses, which must outlive every encoder.
        self._callbacks = (_WriteCallback(_write), _SeekCallback(_seek), _TellCallback(_tell))

    def encode(self, pcm: np.ndarray, sample_rate: int) -> bytes:
        """16-bit mono ``pcm`` (any integer dtype) as a FLAC file, without the MD5 signature."""
        samples = np.ascontiguousarray(pcm, dtype=np.int32)  # libFLAC takes 32-bit samples whatever the depth
        lib = self._lib
        encoder = lib.FLAC__stream_encoder_new()
        if not encoder:
            raise MemoryError("libFLAC could not allocate an encoder")
        _output.data, _output.position = bytearray(), 0
        try:
            lib.FLAC__stream_encoder_set_channels(encoder, 1)
            lib.FLAC__stream_encoder_set_bits_per_sample(encoder, 16)
            lib.FLAC__stream_encoder_set_sample_rate(encoder, sample_rate)
            lib.FLAC__stream_encoder_set_compression_level(encoder, COMPRESSION_LEVEL)
            lib.FLAC__stream_encoder_set_do_md5(encoder, 0)
            lib.FLAC__stream_encoder_set_total_samples_estimate(encoder, len(samples))
            status = lib.FLAC__stream_encoder_init_stream(encoder, *self._callbacks, None, None)
            if status != _INIT_OK:
                raise ValueError(f"libFLAC refused the stream (init status {status}, sample rate {sample_rate})")
            processed = len(samples) == 0 or lib.FLAC__stream_encoder_process_interleaved(
                encoder, samples.ctypes.data, len(samples)
            )
            finished = lib.FLAC__stream_encoder_finish(encoder)
            if not (processed and finished):
                raise RuntimeError("libFLAC failed to encode a segment")
            return bytes(_output.data)
        finally:
            lib.FLAC__stream_encoder_delete(encoder)
            _output.data = bytearray()


SONAMES = ("libFLAC.so.14", "libFLAC.so.12", "libFLAC.so.8")
"""FLAC 1.5, 1.4 and 1.3 on Linux: tried by name first, as searching runs ldconfig in a subprocess."""


def load_libflac() -> LibFlac | None:
    """The system's libFLAC, or None where it is not installed (then libsndfile encodes)."""
    for name in (*SONAMES, None):
        path = name or ctypes.util.find_library("FLAC")  # elsewhere: macOS, other sonames
        if path is None:
            continue
        try:
            return LibFlac(ctypes.CDLL(path))
        except (OSError, AttributeError):  # not there, or too old to have these calls
            continue
    return None
