"""Planning in the farm: a large book is submitted as a request and planned by the control plane.

Phonemising costs about half a millisecond a sentence, so a 20,000-sentence
book would hold `voxfarm submit` (or an HTTP request) for many seconds. Past
``VOXFARM_PLAN_INLINE_CHARS`` the submitter only reads the book and checks
every option (``producer.request.check_request``), stores the request next to
where the plan will be, registers the job as ``planning`` and sends
``voxfarm.plan`` to the control queue; it returns the job id at once.

A control replica takes the plan task, holds a lock in Redis while it plans
(one planner per job; a planner that dies lets the lock expire), stores the
plan and hands the job to the dispatcher with ``Ledger.finish_planning``: a
cancel made meanwhile wins, a pause or a new priority is kept. What was
stored before Redis lost its data is rebuilt by ``resume``: a request
without a plan is planned again, a plan without a ledger is resumed as
before.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from pydantic import ValidationError

from producer.fairshare import DEFAULT_PRIORITY
from producer.request import PlanRequest, Submission, check_request, load_request, request_path, store_request
from producer.submit import (
    DEFAULT_TENANT,
    Lane,
    SubmitResult,
    check_not_live,
    check_scheduling,
    ledger_meta,
    record_submission,
    send_assembly,
    store_and_compare,
    submit_plan,
    update_submission,
    wake_dispatcher,
)
from shared.celery_app import PLAN_TASK
from shared.errors import BadInputError, BrokerError, NotFoundError, RetryableError, VoxfarmError
from shared.keys import manifest_path, plan_path
from shared.ledger import JobState, Ledger
from shared.redis_keys import plan_lock_key
from shared.settings import Settings
from shared.storage import Storage

log = logging.getLogger(__name__)

PLAN_LOCK_TTL_S = 60
"""A planner renews its lock every third of this; a planner that died frees the job this long after."""
SCHEDULING_FIELDS = ("tenant", "priority", "lane")


def submit_request(
    submission: Submission,
    *,
    storage: Storage,
    ledger: Ledger,
    app: Celery,
    lane: Lane = "bulk",
    tenant: str = DEFAULT_TENANT,
    priority: int = DEFAULT_PRIORITY,
    replace: bool = False,
) -> SubmitResult:
    """Store the request, register the job as ``planning`` and leave the planning to the control plane."""
    check_scheduling(tenant, priority, lane)
    job = submission.job
    if not replace:
        check_not_live(ledger, job)
    cover = submission.plan_cover()
    if cover is not None and submission.cover:
        storage.put_bytes(cover, submission.cover, "application/octet-stream")
    # A finished job submitted again is planned afresh: a stale plan or manifest would say it is planned.
    for stale in (plan_path(job), manifest_path(job)):
        storage.delete(stale)
    store_request(storage, submission.request)
    scheduling: dict[str, str | int] = {"tenant": tenant, "priority": priority, "lane": lane}
    record_submission(storage, job, 0, scheduling)
    ledger.register_planning(job, meta=planning_meta(submission.request, **scheduling))
    send_planning(app, job)
    return SubmitResult(job, 0, 0, 0, False, planning=True)


def planning_meta(request: PlanRequest, **extra: str | int | float) -> dict[str, str | int | float]:
    """What the ledger shows of a job before it is planned (planning adds the rest: ``ledger_meta``)."""
    book = request.book
    return {
        "title": book.title[:200],
        "voice": request.voice,
        "chapters": len(book.chapters),
        "chars": book.chars,
        **extra,
    }


def submit_book(
    submission: Submission,
    *,
    storage: Storage,
    ledger: Ledger,
    app: Celery,
    inline_chars: int,
    lane: Lane = "bulk",
    tenant: str = DEFAULT_TENANT,
    priority: int = DEFAULT_PRIORITY,
) -> tuple[SubmitResult, int]:
    """Plan a book of up to ``inline_chars`` characters here and submit its plan; leave a longer one to the
    control plane. Returns the result and the book's chapters (planned ones, for a book planned here)."""
    scheduling: dict[str, Any] = {"tenant": tenant, "priority": priority, "lane": lane}
    if submission.request.book.chars > inline_chars:
        result = submit_request(submission, storage=storage, ledger=ledger, app=app, **scheduling)
        return result, len(submission.request.book.chapters)
    plan = submission.plan()
    result = submit_plan(plan, storage=storage, ledger=ledger, app=app, cover=submission.cover, **scheduling)
    return result, len(plan.chapters)


def send_planning(app: Celery, job: str) -> None:
    try:
        app.send_task(PLAN_TASK, kwargs={"job": job})
    except Exception as exc:  # kombu/redis raise many connection error types
        raise BrokerError(f"cannot send the planning of {job}: {exc}; check VOXFARM_REDIS_URL") from exc


def plan_submitted(job: str, *, ledger: Ledger, app: Celery, settings: Settings, holder: str) -> str:
    """The control plane's half: plan a stored request and hand the job on; returns what became of it.

    Bad input found only now (a sentence no voice can speak, a voice removed
    since) fails the job with its message; a broken connection raises, and the
    task is tried again.
    """
    with _planning_lock(ledger, job, holder) as held:
        if not held:
            return "planned elsewhere"
        try:
            status = ledger.status(job)
        except NotFoundError:
            return "gone"  # Redis lost it: the reconciler registers it again from the stored request
        if not status.planning or status.state not in (JobState.PLANNING, JobState.PAUSED):
            return status.state
        try:
            planned = plan_in_child(job, settings)
        except (BrokerError, RetryableError):
            raise
        except VoxfarmError as exc:  # bad input, or a request this version cannot read
            message = str(exc) or type(exc).__name__
            log.error("planning %s failed: %s", job, message, extra={"job": job})
            ledger.set_state(job, JobState.FAILED, error=message[:500])
            return JobState.FAILED.value
        update_submission(Storage.from_settings(settings), ledger.redis, job, reused=len(planned.reused))
        mark = ledger.finish_planning(job, total=planned.total, reused=planned.reused, meta=planned.meta)
    if mark is None:
        return "not waiting for a plan"
    if mark.completed or not planned.missing:
        ledger.set_state(job, JobState.ASSEMBLING)
        send_assembly(app, job)
        return JobState.ASSEMBLING.value
    wake_dispatcher(ledger)
    log.info("planned %s: %d segments, %d reused", job, planned.total, len(planned.reused), extra={"job": job})
    return JobState.QUEUED.value


@dataclass(frozen=True)
class Planned:
    """What the ledger needs of a plan that a child process made and stored."""

    total: int
    reused: list[int]
    missing: int
    """Distinct keys left to render."""
    meta: dict[str, str | int | float]


def plan_in_child(job: str, settings: Settings) -> Planned:
    """Plan in a process of its own: phonemising holds the interpreter for seconds, and in the control
    process it slowed the dispatcher's cycles thirtyfold (2.6 ms to 87 ms) while a 20,000-sentence book
    was planned. A fresh process per book also gives its memory back when it ends."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(plan_and_store, job, settings).result()
        except BrokenProcessPool as exc:
            raise RetryableError(f"the process planning {job} died: {exc}") from exc


def plan_and_store(job: str, settings: Settings) -> Planned:
    """Plan a stored request, store the plan and find what storage already has."""
    storage = Storage.from_settings(settings)
    try:
        plan = check_request(load_request(storage, job), settings, storage).plan()
    except ValidationError as exc:  # pydantic's errors do not cross a process boundary: keep the message
        raise BadInputError(f"job {job}: the stored request or its plan is not valid: {exc}") from None
    reused, missing = store_and_compare(storage, plan)
    meta = {k: v for k, v in ledger_meta(plan).items() if k not in SCHEDULING_FIELDS}
    return Planned(plan.segments_total, reused, len(missing), meta)


@contextmanager
def _planning_lock(ledger: Ledger, job: str, holder: str) -> Iterator[bool]:
    """Hold the job's planning lock, renewed while planning runs; yields False if another planner holds it."""
    key = plan_lock_key(job)
    if not ledger.redis.set(key, holder, nx=True, ex=PLAN_LOCK_TTL_S):
        yield False
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(PLAN_LOCK_TTL_S / 3):
            try:
                ledger.redis.expire(key, PLAN_LOCK_TTL_S)
            except redis.RedisError as exc:  # a lost renewal costs at most a second planner, never a wrong plan
                log.warning("cannot renew the planning lock of %s: %s", job, exc)

    renewer = threading.Thread(target=renew, name=f"voxfarm-plan-lock-{job[:20]}", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join(5)
        try:
            if ledger.redis.get(key) == holder.encode():
                ledger.redis.delete(key)
        except redis.RedisError as exc:  # the lock expires on its own
            log.warning("cannot release the planning lock of %s: %s", job, exc)


def planning_locked(ledger: Ledger, job: str) -> bool:
    return bool(ledger.redis.exists(plan_lock_key(job)))


def is_unplanned(storage: Storage, job: str) -> bool:
    """A stored request with no plan yet: submitted for the control plane to plan."""
    return not storage.exists(plan_path(job)) and storage.exists(request_path(job))
