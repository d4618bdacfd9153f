"""What one worker process holds for its whole life, and how it handles one message.

Loaded once (arq's on_startup): settings, storage, ledger, the engine on its
card, the batcher and the runner. Every Celery task thread calls
``handle``: validate the message, skip it if its audio already exists, hand
it to the batcher, wait until its audio is stored, mark the ledger, and only
then return so Celery acknowledges the message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from celery import Celery, Task
from celery.exceptions import Reject

from shared.buckets import CONTROL_QUEUE
from shared.celery_app import ASSEMBLE_TASK
from shared.dead_letters import push_dead_letter
from shared.errors import BadInputError, BrokerError, RetryableError, StorageError, WorkerFaultError
from shared.keys import segment_path
from shared.ledger import Ledger
from shared.process_global import ProcessGlobal
from shared.redis_keys import worker_faults_key
from shared.schema import SegmentTask, parse_segment_task
from shared.settings import Settings
from shared.storage import Storage
from workers.batcher import Batcher
from workers.costs import COSTS
from workers.presence import JobStates
from workers.records import DeadLetterRecord, InFlightRecord, ProcessRecord, RetryRecord, SegmentRecord
from workers.runner import BatchRunner, StoredSegment
from workers.telemetry import WorkerIdentity

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_UNIT_SEGMENTS = 64
"""Most segments one work-unit message may carry."""
MAX_WORKER_FAULTS = 3
"""Deliveries of one segment that may end in its worker failing before the segment is called poison."""


@dataclass
class WorkerRuntime:
    settings: Settings
    app: Celery
    storage: Storage
    ledger: Ledger
    batcher: Batcher[SegmentTask]
    runner: BatchRunner
    identity: WorkerIdentity
    report: Callable[[ProcessRecord], None]
    """Where segments, retries, dead letters and in-flight changes go (``workers.telemetry``)."""
    hostname: str
    states: JobStates | None = None
    """The ledger's job states, cached: a cancelled or paused job's segment is not synthesised."""

    # --- one message -------------------------------------------------------
    def handle(self, task: Task, payload: Any) -> dict[str, Any]:
        """Process one delivered message; returning means it may be acknowledged."""
        try:
            return self._handle_segment(task, payload)
        except _RetryLater as later:
            raise task.retry(exc=later.cause, countdown=later.countdown, max_retries=None) from later.cause

    def handle_unit(self, task: Task, payloads: Any) -> dict[str, Any]:
        """A work unit: several segments of one job and bucket in one message, acknowledged once all are stored.

        Its segments reach the batcher together; one that must be retried retries the whole unit (what is
        stored by then costs a HEAD the next time), and one that takes the worker down hands it all on.
        """
        attempts = int(task.request.retries or 0) + 1
        if not isinstance(payloads, list) or not 1 <= len(payloads) <= MAX_UNIT_SEGMENTS:
            reason = f"a work unit must carry 1 to {MAX_UNIT_SEGMENTS} segments"
            self._dead_letter(payloads, reason, attempts, reason="invalid")
            return {"status": "rejected", "reason": reason}
        with ThreadPoolExecutor(max_workers=len(payloads), thread_name_prefix="voxfarm-unit") as pool:
            futures = [pool.submit(self._handle_segment, task, payload) for payload in payloads]
        later: list[_RetryLater] = []
        for future in futures:
            try:
                future.result()
            except _RetryLater as exc:
                later.append(exc)
        if later:
            first = min(later, key=lambda exc: exc.countdown)
            raise task.retry(exc=first.cause, countdown=first.countdown, max_retries=None) from first.cause
        return {"status": "unit", "segments": len(payloads)}

    def _handle_segment(self, task: Task, payload: Any) -> dict[str, Any]:
        attempts = int(task.request.retries or 0) + 1
        try:
            with COSTS.part("message"):
                segment = parse_segment_task(payload, self.settings.max_message_bytes)
                self._check_route(segment)
        except BadInputError as exc:
            log.warning("rejected message: %s", exc)
            self._dead_letter(payload, str(exc), attempts, reason="invalid")
            return {"status": "rejected", "reason": str(exc)}
        log.debug(
            "segment received",
            extra={"job": segment.job, "segment": segment.indexes[0], "key": segment.key, "worker": self.hostname},
        )

        with COSTS.part("message"):
            skipped = self._skip(segment)
        if skipped is not None:
            return skipped
        try:
            stored = self._render(segment)
        except BadInputError as exc:
            self._give_up(segment, str(exc), attempts, reason="bad_input")
            return {"status": "failed", "reason": str(exc)}
        except WorkerFaultError as exc:
            return self._hand_on(segment, exc, attempts)
        except (RetryableError, RuntimeError, FutureTimeout) as exc:
            reason = type(exc).__name__
            if attempts > self.settings.max_retries:
                self._give_up(segment, f"{reason}: {exc}", attempts, reason="retries_exhausted")
                return {"status": "failed", "reason": str(exc)}
            self.report(RetryRecord(_retry_reason(exc)))
            self.ledger.count(segment.job, "retries")
            countdown = self.settings.retry_backoff_s * (2 ** (attempts - 1))
            log.warning(
                "segment %s of %s failed (%s), retry %d in %.1fs",
                segment.indexes[0],
                segment.job,
                exc,
                attempts,
                countdown,
                extra={"job": segment.job, "segment": segment.indexes[0]},
            )
            raise _RetryLater(exc, countdown) from exc

        self.report(SegmentRecord(segment.bucket, stored[1]))
        self._complete(segment)
        log.info(
            "segment stored",
            extra={"job": segment.job, "segment": segment.indexes[0], "key": segment.key, "status": stored[1]},
        )
        return {"status": stored[1], "key": segment.key}

    def _skip(self, segment: SegmentTask) -> dict[str, Any] | None:
        """Acknowledge without synthesis a segment of a cancelled job, or hand back one of a paused job."""
        state = self.states.state(segment.job) if self.states is not None else ""
        if state == "cancelled":
            log.info("segment of a cancelled job acknowledged unrendered", extra={"job": segment.job})
            return {"status": "cancelled"}
        if state == "paused":
            # Not in flight any more: the dispatcher sends it again once the job is resumed.
            _with_retries(lambda: self.ledger.clear_sent(segment.job, segment.indexes), BrokerError)
            log.info("segment of a paused job handed back", extra={"job": segment.job})
            return {"status": "paused"}
        return None

    def _hand_on(self, segment: SegmentTask, exc: WorkerFaultError, attempts: int) -> dict[str, Any]:
        """Put the message back for another worker, without using one of the segment's retries.

        A segment whose deliveries keep taking workers down is poison after
        all: past ``MAX_WORKER_FAULTS`` it is dead-lettered instead, so one
        hostile input cannot crash the whole fleet in a loop.
        """
        counter = worker_faults_key(segment.key)
        try:
            faults = int(self.ledger.redis.incr(counter))
            self.ledger.redis.expire(counter, 24 * 3600)
        except redis.RedisError:
            faults = 1
        if faults >= MAX_WORKER_FAULTS:
            self._give_up(segment, f"took down {faults} workers: {exc}", attempts, reason="crashes_workers")
            return {"status": "failed", "reason": str(exc)}
        self.report(RetryRecord("worker_fault"))
        log.warning(
            "handing segment %s of %s to another worker: %s",
            segment.indexes[0],
            segment.job,
            exc,
            extra={"job": segment.job, "segment": segment.indexes[0]},
        )
        raise Reject(str(exc), requeue=True) from exc

    def _check_route(self, segment: SegmentTask) -> None:
        # A Qwen3-TTS worker serves a checkpoint, and every voice of it.
        served = segment.conditioning.model if segment.conditioning is not None else segment.voice
        if segment.engine != self.identity.engine or served != self.identity.voice:
            raise BadInputError(
                f"message for {segment.engine}/{served} reached a {self.identity.engine}/"
                f"{self.identity.voice} worker; check the queue routing"
            )

    def _render(self, segment: SegmentTask) -> tuple[StoredSegment | None, str]:
        with COSTS.part("storage"):
            path = segment_path(segment.voice, segment.key)
            stored = _with_retries(lambda: self.storage.exists(path), StorageError)
        if stored:
            return None, "exists"
        self.report(InFlightRecord(+1))
        try:
            try:
                future = self.batcher.submit(segment, len(segment.ids), interactive=segment.priority == "interactive")
            except RuntimeError as exc:  # the batcher closed: this worker is stopping
                raise WorkerFaultError(f"worker is stopping: {exc}") from exc
            return future.result(timeout=self.settings.batch_time_limit_s * 2 + 60), "rendered"
        finally:
            self.report(InFlightRecord(-1))

    def _complete(self, segment: SegmentTask) -> None:
        with COSTS.part("ledger"):
            result = _with_retries(lambda: self.ledger.mark_done(segment.job, segment.indexes), BrokerError)
        COSTS.count()
        log.debug("segment marked done in the ledger", extra={"job": segment.job, "segment": segment.indexes[0]})
        if not result.known:
            log.warning("job %s is not in the ledger; its segment is stored and a resume will find it", segment.job)
        if result.completed:
            log.info("job complete, enqueueing assembly", extra={"job": segment.job})
            self.app.send_task(ASSEMBLE_TASK, kwargs={"job": segment.job}, queue=CONTROL_QUEUE)

    def _give_up(self, segment: SegmentTask, message: str, attempts: int, *, reason: str) -> None:
        log.error(
            "segment %s of %s dead-lettered: %s",
            segment.indexes,
            segment.job,
            message,
            extra={"job": segment.job, "segment": segment.indexes[0]},
        )
        self._dead_letter(segment.model_dump(mode="json"), message, attempts, reason=reason)
        _with_retries(lambda: self.ledger.mark_failed(segment.job, segment.indexes, message, attempts), BrokerError)

    def _dead_letter(self, payload: Any, message: str, attempts: int, *, reason: str) -> None:
        self.report(DeadLetterRecord(reason))
        _with_retries(
            lambda: push_dead_letter(
                self.ledger.redis, reason=message, segment=payload, attempts=attempts, worker=self.hostname
            ),
            Exception,
        )


class _RetryLater(Exception):
    """A segment's message should be retried after ``countdown`` seconds (raised to the message's handler)."""

    def __init__(self, cause: BaseException, countdown: float) -> None:
        super().__init__(str(cause))
        self.cause, self.countdown = cause, countdown


def _retry_reason(exc: BaseException) -> str:
    if isinstance(exc, StorageError):
        return "storage"
    if isinstance(exc, BrokerError):
        return "broker"
    if isinstance(exc, FutureTimeout):
        return "timeout"
    return "engine"


def _with_retries(call: Callable[[], T], errors: type[BaseException], attempts: int = 4, delay: float = 0.5) -> T:
    """Retry a short storage or Redis call with backoff before giving the whole segment back."""
    for attempt in range(attempts):
        try:
            return call()
        except errors:
            if attempt == attempts - 1:
                raise
            time.sleep(delay * (2**attempt))
    raise AssertionError("unreachable")


_RUNTIME: ProcessGlobal[WorkerRuntime] = ProcessGlobal("worker runtime", "voxfarm worker")
install_runtime = _RUNTIME.install
current_runtime = _RUNTIME.current
