"""What one worker process holds for its whole life, and how it handles one message.

Loaded once (arq's on_startup): settings, storage, ledger, the engine on its
card, the batcher and the runner. Every Celery task thread calls
``handle``: validate the message, skip it if its audio already exists, hand
it to the batcher, wait until its audio is stored, mark the ledger, and only
then return so Celery acknowledges the message.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from celery import Celery, Task
from celery.exceptions import Reject, Retry

from shared.buckets import CONTROL_QUEUE
from shared.celery_app import ASSEMBLE_TASK
from shared.dead_letters import push_dead_letter
from shared.errors import BadInputError, BrokerError, StorageError, VoxfarmError, WorkerFaultError
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
        return self._handle_all(task, [payload])[0]

    def handle_unit(self, task: Task, payloads: Any) -> dict[str, Any]:
        """A work unit: several segments of one job and bucket in one message, acknowledged once all are stored.

        Its segments are handled together on this one thread: checked in storage in one call, handed to
        the batcher together, marked done in one ledger call per job. One that must be retried retries
        the whole unit (what is stored by then is marked done, and costs a HEAD the next time); one that
        takes the worker down hands it all on.
        """
        if not isinstance(payloads, list) or not 1 <= len(payloads) <= MAX_UNIT_SEGMENTS:
            reason = f"a work unit must carry 1 to {MAX_UNIT_SEGMENTS} segments"
            self._dead_letter(payloads, reason, int(task.request.retries or 0) + 1, reason="invalid")
            return {"status": "rejected", "reason": reason}
        self._handle_all(task, payloads)
        return {"status": "unit", "segments": len(payloads)}

    def _handle_all(self, task: Task, payloads: list[Any]) -> list[dict[str, Any]]:
        """Handle a message's segments; raises Celery's retry or Reject once what was stored is marked done.

        Nothing else leaves: Celery acknowledges a message whose handler raised, so an error of storage or
        Redis past their short retries, or a bug, is judged per segment like a failed synthesis (a retry of
        the message, or the segment given up and reported) instead of dropping the message.
        """
        attempts = int(task.request.retries or 0) + 1
        results: list[dict[str, Any]] = [{} for _ in payloads]
        live = self._accept(payloads, attempts, results)
        try:
            return self._handle_live(task, live, attempts, results)
        except (Retry, Reject):
            raise
        except Exception as exc:
            log.error("a message of %d segments failed: %s", len(live), exc, exc_info=not isinstance(exc, VoxfarmError))
            later: list[_RetryLater] = []
            for position, segment in live:
                results[position] = self._failed(segment, exc, attempts, later)
            self._retry_later(task, later)
            return results

    def _handle_live(
        self, task: Task, live: list[tuple[int, SegmentTask]], attempts: int, results: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        with COSTS.part("storage"):
            paths = [segment_path(segment.voice, segment.key) for _, segment in live]
            present = _with_retries(lambda: self.storage.exists_many(paths), StorageError) if paths else []
        done: list[tuple[SegmentTask, str]] = []
        missing: list[tuple[int, SegmentTask]] = []
        for (position, segment), found in zip(live, present, strict=True):
            if found:
                done.append((segment, "exists"))
                results[position] = {"status": "exists", "key": segment.key}
            else:
                missing.append((position, segment))
        later: list[_RetryLater] = []
        handed: list[WorkerFaultError] = []
        missing, suspects = self._sort_suspects(task, missing, attempts, results)
        outcomes = self._render([segment for _, segment in missing], alone={s.key for s in suspects})
        for (position, segment), outcome in zip(missing, outcomes, strict=True):
            if isinstance(outcome, StoredSegment):
                done.append((segment, "rendered"))
                results[position] = {"status": "rendered", "key": segment.key}
            elif isinstance(outcome, WorkerFaultError):
                results[position] = self._hand_on(segment, outcome, attempts, handed)
            else:
                if not isinstance(outcome, VoxfarmError | RuntimeError | FutureTimeout):
                    log.error("segment %s failed unexpectedly", segment.indexes[0], exc_info=outcome)
                results[position] = self._failed(segment, outcome, attempts, later)
        self._complete(done)
        if handed:
            raise Reject(str(handed[0]), requeue=True) from handed[0]
        self._retry_later(task, later)
        return results

    @staticmethod
    def _retry_later(task: Task, later: list[_RetryLater]) -> None:
        if later:
            first = min(later, key=lambda exc: exc.countdown)
            raise task.retry(exc=first.cause, countdown=first.countdown, max_retries=None) from first.cause

    def _accept(
        self, payloads: list[Any], attempts: int, results: list[dict[str, Any]]
    ) -> list[tuple[int, SegmentTask]]:
        """Parse and route each payload; dead-letter what is malformed, answer what a paused or cancelled job skips."""
        live: list[tuple[int, SegmentTask]] = []
        debug = log.isEnabledFor(logging.DEBUG)
        with COSTS.part("message"):
            for position, payload in enumerate(payloads):
                try:
                    segment = parse_segment_task(payload, self.settings.max_message_bytes)
                    self._check_route(segment)
                except BadInputError as exc:
                    log.warning("rejected message: %s", exc)
                    self._dead_letter(payload, str(exc), attempts, reason="invalid")
                    results[position] = {"status": "rejected", "reason": str(exc)}
                    continue
                if debug:
                    log.debug(
                        "segment received",
                        extra={
                            "job": segment.job,
                            "segment": segment.indexes[0],
                            "key": segment.key,
                            "worker": self.hostname,
                        },
                    )
                skipped = self._skip(segment)
                if skipped is not None:
                    results[position] = skipped
                else:
                    live.append((position, segment))
        return live

    def _sort_suspects(
        self, task: Task, missing: list[tuple[int, SegmentTask]], attempts: int, results: list[dict[str, Any]]
    ) -> tuple[list[tuple[int, SegmentTask]], list[SegmentTask]]:
        """What of a redelivered message to render, and which of it was in an engine call that took a worker down.

        A work unit comes back whole after such a call, its segments likely to
        share one call again: were one of them the culprit, all would take
        down the next worker together, and after three all would be
        dead-lettered. So each suspect is rendered in a call of its own
        (``Batcher.submit_many(alone=...)``): only the culprit fails again. One
        that already reached ``MAX_WORKER_FAULTS`` was dead-lettered then and
        is not rendered again; its mates were what brought the message back.
        The fault counts are read only for a redelivered message (one Redis
        call), as only a worker that failed puts a message back.
        """
        delivery = getattr(task.request, "delivery_info", None) or {}
        if not missing or not delivery.get("redelivered"):
            return missing, []
        try:
            counts = self.ledger.redis.mget([worker_faults_key(segment.key) for _, segment in missing])
        except redis.RedisError:
            return missing, []  # unknown: rendered as usual, as before the counts were kept
        render: list[tuple[int, SegmentTask]] = []
        suspects: list[SegmentTask] = []
        for (position, segment), count in zip(missing, counts, strict=True):
            faults = int(count or 0)
            if faults >= MAX_WORKER_FAULTS:
                reason = f"took down {faults} workers"
                mark = functools.partial(self.ledger.mark_failed, segment.job, segment.indexes, reason, attempts)
                _with_retries(mark, BrokerError)
                results[position] = {"status": "failed", "reason": reason}
                continue
            render.append((position, segment))
            if faults:
                suspects.append(segment)
                log.warning(
                    "segment %s of %s was in an engine call that took down %d worker(s): rendering it alone",
                    segment.indexes[0],
                    segment.job,
                    faults,
                    extra={"job": segment.job, "segment": segment.indexes[0]},
                )
        return render, suspects

    def _render(
        self, segments: list[SegmentTask], alone: set[str] | None = None
    ) -> list[StoredSegment | BaseException]:
        """Hand every segment to the batcher at once and wait until each is stored or has failed.

        Those whose keys are in ``alone`` are each an engine call of their own (``_sort_suspects``).
        """
        if not segments:
            return []
        futures: list[Future[StoredSegment]] | list[WorkerFaultError]
        items = [(s, len(s.ids), s.priority == "interactive") for s in segments]
        solo = {position for position, s in enumerate(segments) if s.key in (alone or ())}
        try:
            futures = self.batcher.submit_many(items, alone=solo)
        except RuntimeError as exc:  # the batcher closed: this worker is stopping
            futures = [WorkerFaultError(f"worker is stopping: {exc}") for _ in segments]
        self.report(InFlightRecord(+len(futures)))
        deadline = time.monotonic() + self.settings.batch_time_limit_s * 2 + 60
        outcomes: list[StoredSegment | BaseException] = []
        try:
            for future in futures:
                if isinstance(future, BaseException):
                    outcomes.append(future)
                    continue
                try:
                    outcomes.append(future.result(timeout=max(deadline - time.monotonic(), 0.0)))
                except Exception as exc:  # noqa: BLE001 - each segment's failure is judged on its own below
                    outcomes.append(exc)
        finally:
            self.report(InFlightRecord(-len(futures)))
        return outcomes

    def _failed(
        self, segment: SegmentTask, exc: BaseException, attempts: int, later: list[_RetryLater]
    ) -> dict[str, Any]:
        """A segment that was not stored: given up, or a retry of the message collected in ``later``."""
        if isinstance(exc, BadInputError):
            self._give_up(segment, str(exc), attempts, reason="bad_input")
            return {"status": "failed", "reason": str(exc)}
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
        later.append(_RetryLater(exc, countdown))
        return {"status": "retry", "reason": str(exc)}

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

    def _hand_on(
        self, segment: SegmentTask, exc: WorkerFaultError, attempts: int, handed: list[WorkerFaultError]
    ) -> dict[str, Any]:
        """Put the message back for another worker (``exc`` joins ``handed``), without using a retry.

        A segment whose deliveries keep taking workers down is poison after
        all: past ``MAX_WORKER_FAULTS`` it is dead-lettered instead, so one
        hostile input cannot crash the whole fleet in a loop. Only a fault of
        the engine call a segment was in counts (``WorkerFaultError.suspect``):
        segments queued behind it, or stopped by a shutdown, are not to blame.
        """
        faults = 0
        if exc.suspect:  # only a segment in the failing engine call; not those merely queued behind it
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
        handed.append(exc)
        return {"status": "handed_on", "reason": str(exc)}

    def _check_route(self, segment: SegmentTask) -> None:
        # A Qwen3-TTS worker serves a checkpoint, and every voice of it.
        served = segment.conditioning.model if segment.conditioning is not None else segment.voice
        if segment.engine != self.identity.engine or served != self.identity.voice:
            raise BadInputError(
                f"message for {segment.engine}/{served} reached a {self.identity.engine}/"
                f"{self.identity.voice} worker; check the queue routing"
            )
        if len(segment.ids) > self.batcher.edges[-1]:
            raise BadInputError(
                f"a segment of {len(segment.ids)} tokens is longer than this worker's largest bucket "
                f"({self.batcher.edges[-1]}); check that producers and workers share VOXFARM_BUCKET_EDGES"
            )

    def _complete(self, stored: list[tuple[SegmentTask, str]]) -> None:
        """Mark what is stored done: one ledger call per job (a unit is one job), then report and log it."""
        if not stored:
            return
        by_job: dict[str, list[int]] = {}
        for segment, _ in stored:
            by_job.setdefault(segment.job, []).extend(segment.indexes)
        with COSTS.part("ledger"):
            results = {
                job: _with_retries(functools.partial(self.ledger.mark_done, job, indexes), BrokerError)
                for job, indexes in by_job.items()
            }
        COSTS.count(len(stored))
        debug = log.isEnabledFor(logging.DEBUG)
        for segment, status in stored:
            self.report(SegmentRecord(segment.bucket, status))
            fields = {"job": segment.job, "segment": segment.indexes[0]}
            if debug:
                log.debug("segment marked done in the ledger", extra=fields)
            log.info("segment stored", extra={**fields, "key": segment.key, "status": status})
        for job, result in results.items():
            if not result.known:
                log.warning("job %s is not in the ledger; its segment is stored and a resume will find it", job)
            if result.completed:
                log.info("job complete, enqueueing assembly", extra={"job": job})
                self.app.send_task(ASSEMBLE_TASK, kwargs={"job": job}, queue=CONTROL_QUEUE)

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
