"""Checking, encoding and writing takes in other processes: the worker's interpreter keeps only the bookkeeping.

A card that renders thousands of segments a second needs more CPU for the
quality gate and the FLAC encoder than one Python interpreter has. With
``VOXFARM_UPLOAD_PROCESSES`` above 0 a share of a batch's takes goes to one
of that many processes, which checks each take and, for those that pass,
encodes them and stores them together (``Storage.put_many``), and answers
with the quality reports and its CPU per part. The samples do not travel
through a pipe: the worker copies them into a shared-memory block it keeps
for reuse, and the pool process reads them there in place (pickling them
cost the worker about 0.8 ms a take). A take that fails comes back: the
worker's retakes decide as before (another take, or the best one kept and
stored with its findings by the worker itself, which is rare).

The processes are spawned, not forked: the worker holds threads and an
engine runtime that a fork would copy half-locked.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing.shared_memory import SharedMemory

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
class _TakeRef:
    """A take as the pool process sees it: where its samples lie in the shared block."""

    offset: int
    """In samples."""
    length: int
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
    """CPU seconds the pool process spent on this take per part: quality, encoding, storage."""


MIN_BLOCK_BYTES = 8 * 1024 * 1024
"""A shared block holds at least this (90 s of 22 kHz float32 samples): shares rarely need a bigger one."""
ATTACHED_BLOCKS = 8
"""Blocks a pool process keeps mapped; the worker keeps one per upload thread."""

_STORAGE: Storage | None = None
_ATTACHED: OrderedDict[str, SharedMemory] = OrderedDict()


def _open(spec: StorageSpec) -> None:
    global _STORAGE  # one storage per pool process, opened once at its start
    _STORAGE = open_storage(spec.url, endpoint_url=spec.endpoint_url, region=spec.region)


def _ready() -> bool:
    return _STORAGE is not None


def _attached(name: str) -> SharedMemory:
    """The worker's block, mapped once and kept: the worker reuses its blocks, so mapping them is rare."""
    block = _ATTACHED.pop(name, None) or SharedMemory(name=name)
    _ATTACHED[name] = block
    while len(_ATTACHED) > ATTACHED_BLOCKS:
        _ATTACHED.popitem(last=False)[1].close()
    return block


def check_and_store(block_name: str, refs: Sequence[_TakeRef], limits: QualityLimits) -> list[TakeResult]:
    """In a pool process: the quality gate for each take, then those that pass encoded and stored together."""
    assert _STORAGE is not None, "the pool process opened no storage"
    block = _attached(block_name)
    results: list[TakeResult] = []
    passing: list[tuple[int, str, bytes]] = []  # (position in results, path, FLAC)
    for ref in refs:
        samples = np.ndarray((ref.length,), dtype=np.float32, buffer=block.buf, offset=4 * ref.offset)
        started = time.thread_time()
        report = check_segment(
            samples, ref.sample_rate, tokens=ref.tokens, length_scale=ref.length_scale, limits=limits
        )
        checked, wall = time.thread_time(), time.perf_counter()
        if not report.passed:
            results.append(TakeResult(report, 0, cpu_s={"quality": checked - started}))
            continue
        data = encode_flac(samples, ref.sample_rate)
        cpu = {"quality": checked - started, "encoding": time.thread_time() - checked}
        passing.append((len(results), ref.path, data))
        results.append(TakeResult(report, len(data), time.perf_counter() - wall, cpu_s=cpu))
    if passing:
        started, wall = time.thread_time(), time.perf_counter()
        _STORAGE.put_many([(path, data) for _, path, data in passing], "audio/flac")
        store_cpu, store_s = (time.thread_time() - started) / len(passing), (time.perf_counter() - wall) / len(passing)
        for position, _path, _data in passing:
            result = results[position]
            results[position] = replace(result, store_s=store_s, cpu_s={**result.cpu_s, "storage": store_cpu})
    return results


class _Blocks:
    """The worker's shared-memory blocks, reused share after share (a new block costs a page fault per 4 KiB)."""

    def __init__(self) -> None:
        self._free: list[SharedMemory] = []
        self._all: list[SharedMemory] = []
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> SharedMemory:
        with self._lock:
            for block in self._free:
                if block.size >= nbytes:
                    self._free.remove(block)
                    return block
        block = SharedMemory(create=True, size=max(MIN_BLOCK_BYTES, 1 << (nbytes - 1).bit_length()))
        with self._lock:
            self._all.append(block)
        return block

    def give(self, block: SharedMemory) -> None:
        with self._lock:
            self._free.append(block)

    def close(self) -> None:
        with self._lock:
            for block in self._all:
                block.close()
                block.unlink()
            self._all, self._free = [], []


class Offload:
    """A pool of ``processes`` processes that check, encode and store takes."""

    def __init__(self, spec: StorageSpec, processes: int) -> None:
        self.spec = spec
        self.processes = processes
        self._lock = threading.Lock()
        self._blocks = _Blocks()
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
        return self.store_many([take], limits)[0]

    def store_many(self, takes: Sequence[Take], limits: QualityLimits) -> list[TakeResult]:
        """Check the takes and store those that pass; a pool process that died hands them on."""
        total = sum(len(take.samples) for take in takes)
        block = self._blocks.take(4 * total)
        refs: list[_TakeRef] = []
        try:
            shared = np.ndarray((total,), dtype=np.float32, buffer=block.buf)
            offset = 0
            for take in takes:
                shared[offset : offset + len(take.samples)] = take.samples
                refs.append(
                    _TakeRef(offset, len(take.samples), take.sample_rate, take.tokens, take.length_scale, take.path)
                )
                offset += len(take.samples)
            del shared
            pool = self._pool
            try:
                return pool.submit(check_and_store, block.name, refs, limits).result()
            except BrokenProcessPool as exc:
                with self._lock:
                    if self._pool is pool:  # the first thread to see it starts a new pool
                        self._pool = self._start()
                raise WorkerFaultError(f"an upload process died: {exc}") from exc
        finally:
            self._blocks.give(block)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        self._blocks.close()
