"""Runs the batches the batcher forms: engine call, failure isolation, and the upload pipeline.

One runner thread owns the engine (the card is owned by one process, and
inside it by one thread). Encoding and upload of a batch run on a small
thread pool, so the card computes the next batch while the last one is
written to storage. Each item's future resolves only after its audio is
durably stored: the Celery task waiting on it acknowledges its message
then, never earlier.

Failures are narrowed before they are reported: a batch that raises is split
in halves until the poison segment stands alone; a batch that runs out of
device memory is halved and the bucket's batch cap lowered; a batch that
exceeds its time limit, or a broken device, fails its items as retryable
and stops the process so the supervisor can restart it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.audio import encode_flac
from shared.errors import (
    DeviceError,
    DeviceOutOfMemoryError,
    EngineError,
    FatalError,
    VoxfarmError,
    WorkerFaultError,
)
from shared.keys import segment_path
from shared.quality import DEFAULT_LIMITS, QualityLimits, QualityReport, best_take, check_segment, encode_checked_flac
from shared.schema import SegmentTask
from shared.storage import Storage
from workers.batcher import Batch, Batcher, Pending
from workers.engines.base import Engine, EngineOutput, EngineRequest

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


@dataclass
class BatchRecord:
    """Statistics of one engine call, for metrics and logs."""

    edge: int
    size: int
    reason: str
    padded_tokens: int
    useful_tokens: int
    padded_frames: int
    useful_frames: int
    compute_s: float
    audio_s: float
    chars: int
    stage_seconds: dict[str, float]
    queue_wait_s: list[float] = field(default_factory=list)
    folded_from: int | None = None


@dataclass
class UploadRecord:
    seconds: float
    bytes: int
    encode_s: float
    ok: bool
    error: str = ""


@dataclass
class FailureRecord:
    kind: str
    """poison, oom, time_limit, device, or quality (a take failed the quality gate)."""
    size: int
    message: str


Observer = Callable[[BatchRecord | UploadRecord | FailureRecord], None]


def _ignore(_record: BatchRecord | UploadRecord | FailureRecord) -> None:
    return None


class BatchRunner:
    """The loop between the batcher and the engine."""

    def __init__(
        self,
        engine: Engine,
        batcher: Batcher[SegmentTask],
        storage: Storage,
        *,
        time_limit_s: float,
        upload_threads: int = 2,
        observer: Observer = _ignore,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.engine = engine
        self.batcher = batcher
        self.storage = storage
        self.time_limit_s = time_limit_s
        self.observer = observer
        self.on_fatal = on_fatal or (lambda exc: None)
        self._uploads = ThreadPoolExecutor(max_workers=upload_threads, thread_name_prefix="voxfarm-upload")
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.fatal: BaseException | None = None
        self.batches_run = 0
        self.quality = QualityGate(limits=engine.quality_limits)
        self._takes: dict[int, list[tuple[np.ndarray, QualityReport]]] = {}
        self._takes_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="voxfarm-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Hand out what is queued, finish it, flush uploads."""
        self.batcher.close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._uploads.shutdown(wait=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = self.batcher.next_batch(timeout=0.2)
            if batch is None:
                if self.batcher.pending_count() == 0 and self._closed():
                    return
                continue
            self.run(batch)

    def _closed(self) -> bool:
        return bool(getattr(self.batcher, "_closed", False))

    # --- one batch -------------------------------------------------------------
    def run(self, batch: Batch[SegmentTask]) -> None:
        """Synthesise one batch and queue its uploads; never raises."""
        if self.fatal is not None:
            self._fail(batch.items, WorkerFaultError(f"worker is shutting down after a fatal error: {self.fatal}"))
            return
        try:
            output, elapsed = self._synthesize(batch.items, batch.edge)
        except DeviceOutOfMemoryError as exc:
            self.observer(FailureRecord("oom", len(batch.items), str(exc)))
            if len(batch.items) == 1:
                self._fail(batch.items, exc)
                return
            self._lower_cap(batch.edge, len(batch.items) // 2)
            for half in _halves(batch.items):
                self.run(Batch(batch.edge, half, batch.reason, batch.formed_at))
            return
        except FatalError as exc:
            self._fatal(batch.items, exc)
            return
        except VoxfarmError as exc:
            if len(batch.items) == 1:
                self._blame(batch.items, exc)
                return
            log.warning("batch of %d failed (%s); splitting to isolate the cause", len(batch.items), exc)
            for half in _halves(batch.items):
                self.run(Batch(batch.edge, half, batch.reason, batch.formed_at))
            return
        except Exception as exc:  # noqa: BLE001 - an engine bug must not kill the runner thread
            wrapped = EngineError(f"{type(exc).__name__}: {exc}")
            if len(batch.items) == 1:
                self._blame(batch.items, wrapped)
                return
            for half in _halves(batch.items):
                self.run(Batch(batch.edge, half, batch.reason, batch.formed_at))
            return
        self.batches_run += 1
        sample_rate = self.engine.sample_rate
        now = time.time()
        record = BatchRecord(
            edge=batch.edge,
            size=len(batch.items),
            reason=batch.reason,
            padded_tokens=output.padded_tokens or batch.padded_tokens,
            useful_tokens=output.useful_tokens or batch.useful_tokens,
            padded_frames=output.padded_frames,
            useful_frames=output.useful_frames,
            compute_s=elapsed,
            audio_s=sum(len(a) for a in output.audio) / sample_rate,
            chars=sum(len(item.payload.text) for item in batch.items),
            stage_seconds=dict(output.stage_seconds),
            queue_wait_s=[max(now - item.payload.enqueued_at, 0.0) for item in batch.items],
            folded_from=batch.folded_from,
        )
        self.observer(record)
        log.debug(
            "batch done",
            extra={
                "batch": {
                    "edge": batch.edge,
                    "reason": batch.reason,
                    "size": len(batch.items),
                    "buckets": [item.payload.bucket for item in batch.items],
                    "keys": [item.payload.key[:12] for item in batch.items],
                    "seconds": round(elapsed, 4),
                    "useful_frames": output.useful_frames,
                    "padded_frames": output.padded_frames,
                }
            },
        )
        for item, audio in zip(batch.items, output.audio, strict=True):
            log.debug(
                "segment synthesised",
                extra={
                    "job": item.payload.job,
                    "segment": item.payload.indexes[0],
                    "key": item.payload.key,
                    "bucket": batch.edge,
                },
            )
            self._uploads.submit(self._store, item, audio, sample_rate)

    def _synthesize(self, items: Sequence[Pending[SegmentTask]], edge: int) -> tuple[EngineOutput, float]:
        requests = [
            EngineRequest(self._noise_key(item), item.payload.ids, item.payload.params, item.payload.conditioning)
            for item in items
        ]
        timer = threading.Timer(self.time_limit_s, self._time_limit_hit, args=(list(items),))
        timer.daemon = True
        started = time.perf_counter()
        timer.start()
        try:
            output = self.engine.synthesize(requests, edge)
        finally:
            timer.cancel()
        elapsed = time.perf_counter() - started
        if elapsed > self.time_limit_s:
            raise DeviceError(f"batch of {len(items)} took {elapsed:.1f}s, over the {self.time_limit_s:.0f}s limit")
        if len(output.audio) != len(items):
            raise EngineError(f"engine returned {len(output.audio)} clips for {len(items)} items")
        return output, elapsed

    def _time_limit_hit(self, items: list[Pending[SegmentTask]]) -> None:
        """The engine call is stuck: give its items back for retry and stop the process."""
        exc = DeviceError(
            f"batch of {len(items)} exceeded the {self.time_limit_s:.0f}s time limit; the card may be hung"
        )
        self.observer(FailureRecord("time_limit", len(items), str(exc)))
        self._fatal(items, exc)

    def _fatal(self, items: Sequence[Pending[SegmentTask]], exc: BaseException) -> None:
        self.observer(FailureRecord("device", len(items), str(exc)))
        self._fail(items, WorkerFaultError(f"device failed, retrying elsewhere: {exc}"))
        if self.fatal is None:
            self.fatal = exc
            self._stop.set()
            self.batcher.close()
            self._fail(self.batcher.take_all(), WorkerFaultError(f"worker is stopping after a fatal error: {exc}"))
            self.on_fatal(exc)

    def _blame(self, items: Sequence[Pending[SegmentTask]], exc: VoxfarmError) -> None:
        """One segment failed alone: poison, or a broken engine? A known-good canary request decides.

        If the canary fails too, the card or engine is broken: the segment is
        handed on without using its retries and the worker stops. Otherwise
        the segment itself is at fault and uses one of its retries.
        """
        try:
            canary = self.engine.canary_request()
            self.engine.synthesize([canary], max(len(canary.ids), 1))
        except Exception as canary_exc:  # noqa: BLE001 - any failure of a known-good request condemns the engine
            log.error(
                "the canary request failed after segment %s did (%s): the engine is broken",
                items[0].payload.key[:12],
                canary_exc,
            )
            self._fatal(items, DeviceError(f"engine fails even on a known-good request: {canary_exc}"))
            return
        self.observer(FailureRecord("poison", 1, str(exc)))
        self._fail(items, exc)

    def _lower_cap(self, edge: int, size: int) -> None:
        tuned = dict(self.batcher.policy.items_per_edge)
        tuned[edge] = max(1, min(size, tuned.get(edge, size)))
        self.batcher.policy.items_per_edge = tuned
        log.warning("out of device memory at bucket %d: batch cap lowered to %d", edge, tuned[edge])

    @staticmethod
    def _fail(items: Sequence[Pending[SegmentTask]], exc: BaseException) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)

    # --- the upload pipeline ---------------------------------------------------
    def _store(self, item: Pending[SegmentTask], audio: np.ndarray, sample_rate: int) -> None:
        task = item.payload
        started = time.perf_counter()
        try:
            kept = self._gate(item, audio, sample_rate)
            if kept is None:
                return  # handed back to the runner thread for another take
            audio, report = kept
            data = encode_flac(audio, sample_rate) if report.passed else encode_checked_flac(audio, sample_rate, report)
            encoded = time.perf_counter()
            path = segment_path(task.voice, task.key)
            self.storage.put_bytes(path, data, "audio/flac")
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the waiting task
            self.observer(UploadRecord(time.perf_counter() - started, 0, 0.0, False, type(exc).__name__))
            if not item.future.done():
                item.future.set_exception(exc)
            return
        done = time.perf_counter()
        log.debug("segment written to storage", extra={"job": task.job, "segment": task.indexes[0], "key": task.key})
        self.observer(UploadRecord(done - encoded, len(data), encoded - started, True))
        if not item.future.done():  # a time-limit failure may have answered it already
            stored = StoredSegment(
                task.key, path, len(audio) / sample_rate, len(data), None if report.passed else report
            )
            item.future.set_result(stored)

    # --- the quality gate --------------------------------------------------------
    def _gate(
        self, item: Pending[SegmentTask], audio: np.ndarray, sample_rate: int
    ) -> tuple[np.ndarray, QualityReport] | None:
        """Check one take; None when it was requeued for another, else the take to store.

        Runs on an upload thread, so it never calls the engine: a failing take
        goes back to the batcher, and the runner thread synthesises it again
        with other noise (``_noise_key``).
        """
        task = item.payload
        report = check_segment(
            audio, sample_rate, tokens=len(task.ids), length_scale=task.params.length_scale, limits=self.quality.limits
        )
        with self._takes_lock:
            takes = self._takes.setdefault(id(item), [])
            takes.append((audio, report))
            attempts = len(takes)
            retry = not report.passed and attempts < self.quality.attempts and self._can_retry(item)
            if not retry:
                del self._takes[id(item)]
        if not report.passed:
            self.observer(FailureRecord("quality", 1, report.summary()))
            log.warning(
                "segment %s of %s failed the quality gate on take %d: %s",
                task.indexes[0],
                task.job,
                attempts,
                report.summary(),
                extra={"job": task.job, "segment": task.indexes[0], "key": task.key},
            )
        if retry:
            if attempts == 1:
                item.future.add_done_callback(functools.partial(self._forget, id(item)))
            self.batcher.requeue([item])
            return None
        if report.passed:
            return audio, report
        kept_audio, kept = best_take(takes)
        return kept_audio, QualityReport(kept.findings, attempts, kept.measures)

    def _can_retry(self, item: Pending[SegmentTask]) -> bool:
        return self.fatal is None and not self._stop.is_set() and not self._closed() and not item.future.done()

    def _forget(self, ident: int, _future: object = None) -> None:
        with self._takes_lock:
            self._takes.pop(ident, None)

    def _noise_key(self, item: Pending[SegmentTask]) -> str:
        """The key the engine seeds its noise from: the content key, or a variant of it for a retake."""
        with self._takes_lock:
            taken = len(self._takes.get(id(item), ()))
        key = item.payload.key
        return key if taken == 0 else hashlib.sha256(f"{key}:take{taken + 1}".encode()).hexdigest()


@dataclass
class QualityGate:
    """How the runner checks each take before it is stored."""

    attempts: int = 3
    """Takes synthesised at most; after the last the best is kept and its findings are reported."""
    limits: QualityLimits = DEFAULT_LIMITS


def _halves(items: list[Pending[Any]]) -> tuple[list[Pending[Any]], list[Pending[Any]]]:
    middle = len(items) // 2
    return items[:middle], items[middle:]
