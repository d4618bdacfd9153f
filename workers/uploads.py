"""The upload pipeline: each take is checked, encoded and written to storage off the runner thread.

A small thread pool does the work, so the card computes the next batch
while the last one is encoded and stored. Each item's future resolves only
after its audio is durably stored: the Celery task waiting on it
acknowledges its message then, never earlier. A take that fails the quality
gate may go back for another (``workers.retakes``) instead.
"""

from __future__ import annotations

import logging
import time
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


class Uploads:
    """Encodes and stores synthesised segments on ``threads`` threads; answers each item's future."""

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
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="voxfarm-upload")

    def submit(self, item: Pending[SegmentTask], audio: np.ndarray, sample_rate: int) -> None:
        self._pool.submit(self._store, item, audio, sample_rate)

    def shutdown(self) -> None:
        """Finish every upload in hand."""
        self._pool.shutdown(wait=True)
        if self.offload is not None:
            self.offload.shutdown()

    def _store(self, item: Pending[SegmentTask], audio: np.ndarray, sample_rate: int) -> None:
        task = item.payload
        started = time.perf_counter()
        try:
            if self.offload is not None:
                failed = self._offloaded(item, audio, sample_rate)
                if failed is None:
                    return  # checked, encoded and stored by a pool process
                kept = self.retakes.judge(item, audio, failed)
            else:
                with COSTS.part("quality"):
                    kept = self.retakes.check(item, audio, sample_rate)
            if kept is None:
                return  # handed back to the runner thread for another take
            audio, report = kept
            with COSTS.part("encoding"):
                if report.passed:
                    data = encode_flac(audio, sample_rate)
                else:
                    data = encode_checked_flac(audio, sample_rate, report)
            encoded = time.perf_counter()
            path = segment_path(task.voice, task.key)
            with COSTS.part("storage"):
                self.storage.put_bytes(path, data, "audio/flac")
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the waiting task
            self.observer(UploadRecord(time.perf_counter() - started, 0, 0.0, False, type(exc).__name__))
            if not item.future.done():
                item.future.set_exception(exc)
            return
        done = time.perf_counter()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "segment written to storage", extra={"job": task.job, "segment": task.indexes[0], "key": task.key}
            )
        self.observer(UploadRecord(done - encoded, len(data), encoded - started, True))
        if not item.future.done():  # a time-limit failure may have answered it already
            stored = StoredSegment(
                task.key, path, len(audio) / sample_rate, len(data), None if report.passed else report
            )
            item.future.set_result(stored)

    def _offloaded(self, item: Pending[SegmentTask], audio: np.ndarray, sample_rate: int) -> QualityReport | None:
        """Check, encode and store the take in a pool process: None once stored, else the gate's failing report."""
        assert self.offload is not None
        task = item.payload
        path = segment_path(task.voice, task.key)
        take = Take(audio, sample_rate, len(task.ids), task.params.length_scale, path)
        result = self.offload.store(take, self.retakes.gate.limits)
        for part, seconds in result.cpu_s.items():
            COSTS.add(part, seconds)
        COSTS.add("offloaded", sum(result.cpu_s.values()))
        if not result.bytes:
            return result.report
        self.observer(UploadRecord(result.store_s, result.bytes, result.encode_s, True))
        if not item.future.done():
            item.future.set_result(StoredSegment(task.key, path, len(audio) / sample_rate, result.bytes))
        return None
