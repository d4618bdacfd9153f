"""Resume and reconcile: bring the ledger and the dispatcher back in line with storage.

Storage is the source of truth: the plan says what a job needs, the segment
objects say what exists. ``resume_job`` (``voxfarm resume``) does two things
that both mean "let this job go on": it unpauses a paused job, and it
recovers lost work: it marks stored segments done, rebuilds a ledger lost
with its Redis (tenant, priority and a pause come back from the stored
submission), hands every segment that is neither stored nor in flight (sent
within the visibility timeout and not yet done) back to the dispatcher, and
re-sends assembly when everything is there. The reconciler runs it on the
control plane for jobs that stopped making progress, for jobs stuck in
assembly, and for unfinished jobs found in storage but missing from Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from celery import Celery

from producer.deferred import is_unplanned, planning_locked, planning_meta, send_planning
from producer.request import REQUEST_FILE, load_request
from producer.submit import (
    group_by_key,
    ledger_meta,
    load_plan,
    plan_stored_keys,
    read_submission,
    send_assembly,
    submitted_reused,
    update_submission,
    wake_dispatcher,
)
from shared.errors import BadInputError, ConflictError, NotFoundError, RetryableError, VoxfarmError
from shared.keys import manifest_path
from shared.ledger import JobState, Ledger
from shared.redis_keys import SCHED_ACTIVE, resume_lock_key
from shared.settings import Settings
from shared.storage import Storage

log = logging.getLogger(__name__)

LOCK_TTL_S = 120


@dataclass(frozen=True)
class ResumeResult:
    job: str
    total: int
    stored: int
    enqueued: int
    """Messages handed back to the dispatcher (one per distinct missing key)."""
    in_flight: int
    """Segments left alone because a worker may still hold them."""
    rebuilt: bool
    """The ledger was missing and was rebuilt from storage."""
    assembling: bool
    planning: bool = False
    """The job had not been planned yet: its request was handed to the control plane again."""


def resume_job(
    job: str,
    *,
    storage: Storage,
    ledger: Ledger,
    app: Celery,
    settings: Settings,
    force: bool = False,
    unpause: bool = True,
) -> ResumeResult:
    """Let a job go on: unpause it (unless ``unpause`` is False, as for the reconciler) and recover lost work."""
    if is_unplanned(storage, job) or _waiting_for_plan(ledger, job):
        return resume_planning(job, storage=storage, ledger=ledger, app=app, unpause=unpause)
    plan = load_plan(storage, job)
    groups = group_by_key(plan.segments)
    present = plan_stored_keys(storage, plan, groups)
    stored_indexes = [s.index for key in present for s in groups[key]]

    rebuilt = not ledger.exists(job)
    submission = read_submission(storage, job) if rebuilt else {}
    if rebuilt:
        scheduling = {k: v for k, v in submission.items() if k in ("tenant", "priority", "lane")}
        ledger.create_job(job, total=plan.segments_total, reused=[], meta=ledger_meta(plan, rebuilt=1, **scheduling))
        ledger.set_meta(job, reused=submitted_reused(storage, job))
    status = ledger.status(job)
    paused = status.state == JobState.PAUSED or bool(submission.get("paused"))
    if status.state == JobState.DONE and storage.exists(manifest_path(job)):
        return ResumeResult(job, plan.segments_total, len(stored_indexes), 0, 0, rebuilt, False)
    if status.state == JobState.CANCELLED or submission.get("cancelled"):
        if rebuilt:
            ledger.set_state(job, JobState.CANCELLED)
        raise ConflictError(f"job {job} was cancelled; submit the book again to render it (what is stored is reused)")

    mark = ledger.mark_done(job, stored_indexes) if stored_indexes else None
    done = ledger.done_indexes(job)
    sent = {} if force or rebuilt else ledger.sent_times(job)
    horizon = time.time() - settings.visibility_timeout_s - 60
    missing, in_flight = [], 0
    for key, segments in groups.items():
        if key in present or all(s.index in done for s in segments):
            continue
        if any(sent.get(s.index, 0.0) > horizon for s in segments) and not any(
            s.index in status.failed for s in segments
        ):
            in_flight += len(segments)
            continue
        missing.append(segments)
    if missing:
        ledger.clear_sent(job, (s.index for segments in missing for s in segments))
    enqueued = len(missing)

    complete = len(done) >= plan.segments_total
    assembling = False
    if complete:
        current = ledger.status(job).state
        if (mark is not None and mark.completed) or current in (JobState.ASSEMBLING, JobState.RENDERING):
            _move_on(ledger, job, JobState.ASSEMBLING, (JobState.ASSEMBLING, JobState.RENDERING))
            send_assembly(app, job)
            assembling = True
    elif paused and not unpause:
        if rebuilt:
            ledger.set_state(job, JobState.PAUSED)  # a pause outlives a lost Redis; `voxfarm resume` lifts it
    else:
        if status.state in (JobState.FAILED, JobState.PAUSED) or rebuilt:
            to = JobState.RENDERING if done or sent else JobState.QUEUED
            _move_on(ledger, job, to, (JobState.QUEUED, JobState.FAILED, JobState.PAUSED))
        if paused:
            update_submission(storage, ledger.redis, job, paused=0)
        ledger.reload(job)
        wake_dispatcher(ledger)
    log.info(
        "resumed %s: %d stored, %d enqueued, %d in flight%s",
        job,
        len(stored_indexes),
        enqueued,
        in_flight,
        " (ledger rebuilt)" if rebuilt else "",
        extra={"job": job},
    )
    return ResumeResult(job, plan.segments_total, len(stored_indexes), enqueued, in_flight, rebuilt, assembling)


def _move_on(ledger: Ledger, job: str, to: JobState, allowed: tuple[JobState, ...]) -> None:
    """Move the job on from the state read earlier, unless a cancel landed since: the cancel wins.

    Resuming reads the plan and storage between reading the job's state and
    changing it (seconds for a long book); a blind write would bring a job
    cancelled meanwhile back to life. A job another resume moved on already
    is left as it is.
    """
    moved, previous = ledger.transition(job, to, allowed)
    if not moved and previous == JobState.CANCELLED.value:
        raise ConflictError(
            f"job {job} was cancelled while it was being resumed; submit the book again to render it "
            "(what is stored is reused)"
        )


def _waiting_for_plan(ledger: Ledger, job: str) -> bool:
    """The ledger still waits for the control plane's plan (stored a moment ago, not yet handed on)."""
    try:
        return ledger.status(job).planning
    except NotFoundError:
        return False


def resume_planning(job: str, *, storage: Storage, ledger: Ledger, app: Celery, unpause: bool = True) -> ResumeResult:
    """Let a job that was never planned go on: register it again if Redis lost it, and plan it (again)."""
    submission = read_submission(storage, job)
    rebuilt = not ledger.exists(job)
    if rebuilt:
        scheduling = {k: v for k, v in submission.items() if k in ("tenant", "priority", "lane")}
        ledger.register_planning(job, meta=planning_meta(load_request(storage, job), rebuilt=1, **scheduling))
    state = ledger.status(job).state
    if state == JobState.CANCELLED or submission.get("cancelled"):
        if rebuilt:
            ledger.set_state(job, JobState.CANCELLED)
        raise ConflictError(f"job {job} was cancelled; submit the book again to render it (what is stored is reused)")
    paused = state == JobState.PAUSED or bool(submission.get("paused"))
    if paused and not unpause:
        if rebuilt:
            ledger.set_state(job, JobState.PAUSED)  # planned now, dispatched once `voxfarm resume` lifts the pause
    elif state != JobState.PLANNING:
        _move_on(ledger, job, JobState.PLANNING, (JobState.FAILED, JobState.PAUSED))
        if paused:
            update_submission(storage, ledger.redis, job, paused=0)
    if not planning_locked(ledger, job):
        send_planning(app, job)  # a second plan task finds the job planned, or the lock held, and does nothing
    log.info("resumed %s: handed to the control plane to plan%s", job, " (ledger rebuilt)" if rebuilt else "")
    return ResumeResult(job, 0, 0, 0, 0, rebuilt, False, planning=True)


def unfinished_jobs_in_storage(storage: Storage) -> list[str]:
    """Jobs that have a plan (or a request still to plan) and no manifest: submitted, never finished."""
    plans, manifests = set(), set()
    for path in storage.list("jobs"):
        parts = path.split("/")
        if len(parts) == 3 and parts[2] in ("plan.json", REQUEST_FILE):
            plans.add(parts[1])
        elif len(parts) == 3 and parts[2] == "manifest.json":
            manifests.add(parts[1])
    return sorted(plans - manifests)


class Reconciler:
    """A control-plane loop that resumes stalled or orphaned jobs; one replica at a time per job."""

    def __init__(self, *, storage: Storage, ledger: Ledger, app: Celery, settings: Settings) -> None:
        self.storage, self.ledger, self.app, self.settings = storage, ledger, app, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="voxfarm-reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.reconcile_interval_s):
            try:
                self.run_once()
            except VoxfarmError as exc:
                log.warning("reconcile pass failed: %s", exc)
            except (redis.RedisError, OSError) as exc:
                log.warning("reconcile pass failed, Redis or storage unreachable: %s", exc)
            except Exception:  # a bug must not end the thread while the control service looks healthy
                log.exception("reconcile pass failed unexpectedly")

    def run_once(self) -> list[ResumeResult]:
        now = time.time()
        results = []
        for job in self._candidates(now):
            lock = resume_lock_key(job)
            if not self.ledger.redis.set(lock, "1", nx=True, ex=LOCK_TTL_S):
                continue
            try:
                results.append(
                    resume_job(
                        job,
                        storage=self.storage,
                        ledger=self.ledger,
                        app=self.app,
                        settings=self.settings,
                        unpause=False,
                    )
                )
            except NotFoundError as exc:
                log.warning("cannot resume %s: %s", job, exc)
            except BadInputError as exc:  # a cancelled job found in storage: it stays cancelled
                log.info("not resuming %s: %s", job, exc)
            except (redis.RedisError, RetryableError):
                raise  # Redis or storage is down: the next pass tries every job again
            except Exception as exc:  # one job that cannot be resumed must not stop the others
                log.error("cannot resume %s: %s", job, exc, exc_info=not isinstance(exc, VoxfarmError))
            finally:
                self.ledger.redis.delete(lock)
        return results

    def _candidates(self, now: float) -> list[str]:
        stall = self.settings.reconcile_stall_s
        found = []
        known = set(self.ledger.jobs())
        dispatched = {v.decode() if isinstance(v, bytes) else str(v) for v in self.ledger.redis.smembers(SCHED_ACTIVE)}
        for status in self.ledger.statuses(sorted(known)):
            job = status.job
            idle = now - max(status.updated_at, status.created_at)
            if status.state == JobState.QUEUED and job in dispatched:
                continue  # waiting its turn: the dispatcher holds it, and nothing of it is in flight to lose
            stalled = (JobState.PLANNING, JobState.QUEUED, JobState.RENDERING, JobState.ASSEMBLING)
            if status.state in stalled and idle > stall and not planning_locked(self.ledger, job):
                found.append(job)
        for job in unfinished_jobs_in_storage(self.storage):
            if job not in known or not self.ledger.exists(job):
                found.append(job)
        return sorted(set(found))
