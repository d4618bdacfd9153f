"""Runs the batches the batcher forms: the engine call and failure isolation.

One runner thread owns the engine (the card is owned by one process, and
inside it by one thread). It hands each synthesised batch to the upload
pipeline (``workers.uploads``), whose threads check every take against the
quality gate (``workers.retakes``), encode it and store it, so the card
computes the next batch while the last one is written.

Failures are narrowed before they are reported: a batch that raises is split
in halves until the poison segment stands alone; a batch that runs out of
device memory is halved and the bucket's batch cap lowered; a batch that
exceeds its time limit, or a broken device, fails its items as retryable
and stops the process so the supervisor can restart it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from shared.errors import (
    DeviceError,
    DeviceOutOfMemoryError,
    EngineError,
    FatalError,
    VoxfarmError,
    WorkerFaultError,
)
from shared.schema import SegmentTask
from shared.storage import Storage
from workers.batcher import Batch, Batcher, Pending
from workers.costs import COSTS
from workers.engines.base import Engine, EngineOutput, EngineRequest
from workers.offload import Offload
from workers.records import BatchRecord, FailureRecord, Observer, UploadRecord, ignore
from workers.retakes import QualityGate, Retakes
from workers.uploads import StoredSegment, Uploads
from workers.watchdog import Watchdog

# The runner's interface: what its observer receives and what each item's future resolves to.
__all__ = [
    "BatchRecord",
    "BatchRunner",
    "FailureRecord",
    "Observer",
    "QualityGate",
    "StoredSegment",
    "UploadRecord",
]

log = logging.getLogger(__name__)


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
        offload: Offload | None = None,
        observer: Observer = ignore,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.engine = engine
        self.batcher = batcher
        self.storage = storage
        self.time_limit_s = time_limit_s
        self.observer = observer
        self.on_fatal = on_fatal or (lambda exc: None)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.fatal: BaseException | None = None
        self.batches_run = 0
        self.quality = QualityGate(limits=engine.quality_limits)
        self.retakes = Retakes(self.quality, batcher, observer, accepting=self._accepting)
        self._uploads = Uploads(storage, self.retakes, observer, threads=upload_threads, offload=offload)
        self._watchdog: Watchdog[list[Pending[SegmentTask]]] = Watchdog(time_limit_s, self._time_limit_hit)

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="voxfarm-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Hand out what is queued, finish it, flush uploads.

        After a fatal error the runner thread has nothing left to finish, or is
        stuck in an engine call that never returns (``stuck``): waiting for it
        would only keep the worker from being restarted.
        """
        self.batcher.close()
        if self._thread is not None:
            self._thread.join(min(timeout, 1.0) if self.fatal is not None else timeout)
        self._uploads.shutdown()

    @property
    def stuck(self) -> bool:
        """The runner thread is still inside an engine call after ``stop``: the call hung."""
        return self._thread is not None and self._thread.is_alive() and self.batcher.closed

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = self.batcher.next_batch(timeout=0.2)
            if batch is None:
                if self.batcher.pending_count() == 0 and self.batcher.closed:
                    return
                continue
            try:
                self.run(batch)
            except Exception as exc:  # run() never raises by design; a bug must not strand futures
                log.exception("the runner failed on a batch of %d", len(batch.items))
                self._fail(batch.items, EngineError(f"{type(exc).__name__}: {exc}"))

    def _accepting(self) -> bool:
        """Whether work may still be handed back for another take (not once the runner is stopping)."""
        return self.fatal is None and not self._stop.is_set() and not self.batcher.closed

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
        debug = log.isEnabledFor(logging.DEBUG)  # the per-segment lines' fields cost more than the engine's stand-in
        if debug:
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
        takes = list(zip(batch.items, output.audio, strict=True))
        if debug:
            for item, _audio in takes:
                log.debug(
                    "segment synthesised",
                    extra={
                        "job": item.payload.job,
                        "segment": item.payload.indexes[0],
                        "key": item.payload.key,
                        "bucket": batch.edge,
                    },
                )
        self._uploads.submit(takes, sample_rate)

    def _synthesize(self, items: Sequence[Pending[SegmentTask]], edge: int) -> tuple[EngineOutput, float]:
        requests = [
            EngineRequest(
                self.retakes.noise_key(item), item.payload.ids, item.payload.params, item.payload.conditioning
            )
            for item in items
        ]
        started = time.perf_counter()
        self._watchdog.arm(list(items))
        try:
            with COSTS.part("engine"):
                output = self.engine.synthesize(requests, edge)
        finally:
            self._watchdog.disarm()
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
        self._fail(items, WorkerFaultError(f"device failed, retrying elsewhere: {exc}", suspect=True))
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
            self._watchdog.arm(list(items))  # a card that hangs on the canary too is stopped like any hung call
            try:
                self.engine.synthesize([canary], max(len(canary.ids), 1))
            finally:
                self._watchdog.disarm()
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


def _halves(items: list[Pending[Any]]) -> tuple[list[Pending[Any]], list[Pending[Any]]]:
    middle = len(items) // 2
    return items[:middle], items[middle:]
