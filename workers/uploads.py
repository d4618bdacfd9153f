"""The upload pipeline: each take is checked, encoded and written to storage off the runner thread.

A small thread pool does the work, so the card computes the next batch
while the last one is encoded and stored. A batch's takes are split between
the threads; each thread checks and encodes its share take by take and
stores them with one ``Storage.put_many``, which local storage makes durable
with one filesystem flush instead of an fsync per file. Each item's future
resolves only after its audio is durably stored: the Celery task waiting on
it acknowledges its message then, never earlier. A take that fails the
quality gate may go back for another (``workers.retakes``) instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from shared.audio import encode_flac
from shared.keys import segment_path
from shared.quality import QualityReport, encode_checked_flac
from shared.schema import SegmentTask
from shared.storage import Storage
from workers.batcher import Pending
from workers.costs import COSTS
from workers.offload import Offload, Take
from workers.records import Observer, UploadRecord
from workers.retakes import Retakes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredSegment:
    """What a task learns once its segment is safely in storage."""

    key: str
    path: str
    audio_s: float
    bytes: int
    quality: QualityReport | None = None
    """Set when the take was kept after failing the quality gate on every attempt."""


MIN_TAKES_PER_THREAD = 8
"""A batch is split between the threads only in shares this big: each share costs one storage flush."""


@dataclass(frozen=True)
class _Encoded:
    item: Pending[SegmentTask]
    audio: np.ndarray
    report: QualityReport
    data: bytes
    """Empty when a pool process stored the take."""
    encode_s: float


class Uploads:
    """Checks, encodes and stores synthesised segments on ``threads`` threads; answers each item's future."""

    def __init__(
        self,
        storage: Storage,
        retakes: Retakes,
        observer: Observer,
        *,
        threads: int = 2,
        offload: Offload | None = None,
    ) -> None:
        self.storage = storage
        self.retakes = retakes
        self.observer = observer
        self.offload = offload
        """Where takes are checked, encoded and stored when not on these threads (``workers.offload``)."""
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="voxfarm-upload")

    def submit(self, takes: Sequence[tuple[Pending[SegmentTask], np.ndarray]], sample_rate: int) -> None:
        """Queue one batch's takes."""
        store = self._store if self.offload is None else self._offloaded
        shares = max(1, min(self._threads, len(takes) // MIN_TAKES_PER_THREAD))
        for share in range(shares):
            self._pool.submit(store, takes[share::shares], sample_rate)

    def shutdown(self) -> None:
        """Finish every upload in hand."""
        self._pool.shutdown(wait=True)
        if self.offload is not None:
            self.offload.shutdown()

    def _store(self, takes: Sequence[tuple[Pending[SegmentTask], np.ndarray]], sample_rate: int) -> None:
        encoded = [e for item, audio in takes if (e := self._encode(item, audio, sample_rate)) is not None]
        if not encoded:
            return
        started = time.perf_counter()
        try:
            with COSTS.part("storage"):
                self.storage.put_many([(_path(e.item), e.data) for e in encoded], "audio/flac")
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the waiting tasks
            for e in encoded:
                self._failed(e.item, exc, e.encode_s)
            return
        store_s = (time.perf_counter() - started) / len(encoded)
        for e in encoded:
            self._stored(e, sample_rate, size=len(e.data), store_s=store_s)

    def _encode(self, item: Pending[SegmentTask], audio: np.ndarray, sample_rate: int) -> _Encoded | None:
        """The take checked and encoded; None when it went back for another take or failed (its future says)."""
        started = time.perf_counter()
        try:
            with COSTS.part("quality"):
                kept = self.retakes.check(item, audio, sample_rate)
            if kept is None:
                return None  # handed back to the runner thread for another take
            audio, report = kept
            with COSTS.part("encoding"):
                data = _encoded(audio, sample_rate, report)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the waiting task
            self._failed(item, exc, time.perf_counter() - started)
            return None
        return _Encoded(item, audio, report, data, time.perf_counter() - started)

    def _failed(self, item: Pending[SegmentTask], exc: BaseException, seconds: float) -> None:
        self.observer(UploadRecord(seconds, 0, 0.0, False, type(exc).__name__))
        if not item.future.done():
            item.future.set_exception(exc)

    def _stored(self, take: _Encoded, sample_rate: int, *, size: int, store_s: float) -> None:
        item, task = take.item, take.item.payload
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "segment written to storage", extra={"job": task.job, "segment": task.indexes[0], "key": task.key}
            )
        self.observer(UploadRecord(store_s, size, take.encode_s, True))
        if not item.future.done():  # a time-limit failure may have answered it already
            kept = None if take.report.passed else take.report
            item.future.set_result(StoredSegment(task.key, _path(item), len(take.audio) / sample_rate, size, kept))

    def _offloaded(self, takes: Sequence[tuple[Pending[SegmentTask], np.ndarray]], sample_rate: int) -> None:
        """Check, encode and store a share in a pool process; a take failing the gate comes back to the retakes."""
        assert self.offload is not None
        started = time.perf_counter()
        try:
            results = self.offload.store_many(
                [
                    Take(audio, sample_rate, len(item.payload.ids), item.payload.params.length_scale, _path(item))
                    for item, audio in takes
                ],
                self.retakes.gate.limits,
            )
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the waiting tasks
            for item, _audio in takes:
                self._failed(item, exc, time.perf_counter() - started)
            return
        for (item, audio), result in zip(takes, results, strict=True):
            for part, seconds in result.cpu_s.items():
                COSTS.add(part, seconds)
            COSTS.add("offloaded", sum(result.cpu_s.values()))
            if result.bytes:
                stored = _Encoded(item, audio, result.report, b"", result.encode_s)
                self._stored(stored, sample_rate, size=result.bytes, store_s=result.store_s)
            else:
                self._kept_after_failing(item, audio, sample_rate, result.report)

    def _kept_after_failing(
        self, item: Pending[SegmentTask], audio: np.ndarray, sample_rate: int, report: QualityReport
    ) -> None:
        """A take the pool found failing: another take, or the best one stored here with its findings."""
        try:
            kept = self.retakes.judge(item, audio, report)
            if kept is None:
                return  # handed back to the runner thread for another take
            audio, report = kept
            with COSTS.part("encoding"):
                data = _encoded(audio, sample_rate, report)
            with COSTS.part("storage"):
                self.storage.put_bytes(_path(item), data, "audio/flac")
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the waiting task
            self._failed(item, exc, 0.0)
            return
        self._stored(_Encoded(item, audio, report, data, 0.0), sample_rate, size=len(data), store_s=0.0)


def _encoded(audio: np.ndarray, sample_rate: int, report: QualityReport) -> bytes:
    """FLAC of a take; one kept despite failing the gate carries its findings in the file."""
    return encode_flac(audio, sample_rate) if report.passed else encode_checked_flac(audio, sample_rate, report)


def _path(item: Pending[SegmentTask]) -> str:
    return segment_path(item.payload.voice, item.payload.key)
