"""Checking, encoding and writing takes in other processes: the worker's interpreter keeps only the bookkeeping.

A card that renders thousands of segments a second needs more CPU for the
quality gate and the FLAC encoder than one Python interpreter has. With
``VOXFARM_UPLOAD_PROCESSES`` above 0 each take goes (its samples pickled:
about 0.35 MB for 4 s of speech) to one of that many processes, which
checks it and, when it passes, encodes and stores it, and answers with the
quality report and its CPU per part. A take that fails comes back: the
worker's retakes decide as before (another take, or the best one kept and
stored with its findings by the worker itself, which is rare).

The processes are spawned, not forked: the worker holds threads and an
engine runtime that a fork would copy half-locked.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from shared.audio import encode_flac
from shared.errors import WorkerFaultError
from shared.quality import QualityLimits, QualityReport, check_segment
from shared.storage import Storage, open_storage


@dataclass(frozen=True)
class StorageSpec:
    """How a pool process opens the worker's storage for itself."""

    url: str
    endpoint_url: str | None = None
    region: str = "us-east-1"


@dataclass(frozen=True)
class Take:
    """One synthesised take and where it goes if it passes."""

    samples: np.ndarray
    sample_rate: int
    tokens: int
    length_scale: float
    path: str


@dataclass(frozen=True)
class TakeResult:
    report: QualityReport
    bytes: int
    """Bytes stored; 0 when the take failed the gate and was not stored."""
    encode_s: float = 0.0
    store_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds the pool process spent per part: quality, encoding, storage."""


_STORAGE: Storage | None = None


def _open(spec: StorageSpec) -> None:
    global _STORAGE  # one storage per pool process, opened once at its start
    _STORAGE = open_storage(spec.url, endpoint_url=spec.endpoint_url, region=spec.region)


def _ready() -> bool:
    return _STORAGE is not None


def check_and_store(take: Take, limits: QualityLimits) -> TakeResult:
    """In a pool process: the quality gate, then for a take that passes the FLAC encoding and the write."""
    assert _STORAGE is not None, "the pool process opened no storage"
    started = time.thread_time()
    report = check_segment(
        take.samples, take.sample_rate, tokens=take.tokens, length_scale=take.length_scale, limits=limits
    )
    checked = time.thread_time()
    if not report.passed:
        return TakeResult(report, 0, cpu_s={"quality": checked - started})
    wall = time.perf_counter()
    data = encode_flac(take.samples, take.sample_rate)
    encoded, encoded_wall = time.thread_time(), time.perf_counter()
    _STORAGE.put_bytes(take.path, data, "audio/flac")
    cpu = {"quality": checked - started, "encoding": encoded - checked, "storage": time.thread_time() - encoded}
    return TakeResult(report, len(data), encoded_wall - wall, time.perf_counter() - encoded_wall, cpu)


class Offload:
    """A pool of ``processes`` processes that check, encode and store takes."""

    def __init__(self, spec: StorageSpec, processes: int) -> None:
        self.spec = spec
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_open, initargs=(self.spec,)
        )

    def warm(self) -> None:
        """Start every process now (a second each), not on the first segments."""
        for future in [self._pool.submit(_ready) for _ in range(self.processes)]:
            future.result()

    def store(self, take: Take, limits: QualityLimits) -> TakeResult:
        """Check the take and store it if it passes; a pool process that died hands the segment on."""
        pool = self._pool
        try:
            return pool.submit(check_and_store, take, limits).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:  # the first thread to see it starts a new pool
                    self._pool = self._start()
            raise WorkerFaultError(f"an upload process died: {exc}") from exc

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
