"""A large book submitted as a request and planned by the control plane (``producer/deferred.py``).

The control plane's half runs here in the test process against a real Redis
and local storage; the fault suite renders such a job on real workers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from producer.api.models import BookOptions
from producer.deferred import plan_submitted, submit_request
from producer.operations import Operations
from producer.request import Submission, load_request, store_request, submission_from_args
from producer.resume import Reconciler, resume_job, unfinished_jobs_in_storage
from producer.submit import load_plan
from shared.buckets import CONTROL_QUEUE
from shared.errors import BadInputError
from shared.keys import plan_path
from shared.ledger import JobState, Ledger
from shared.redis_keys import SCHED_ACTIVE, plan_lock_key
from shared.settings import Settings, load_settings
from tests.support.books import write_book


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return load_settings(redis_url=redis_url, storage_url=(tmp_path / "store").as_uri())


@pytest.fixture
def ops(settings: Settings) -> Operations:
    return Operations.from_settings(settings)


def _submission(book: Path, settings: Settings, ops: Operations, **options: object) -> Submission:
    args = argparse.Namespace(book=book, **{**BookOptions().planner_options(), **options})
    return submission_from_args(args, settings, ops.storage)


def _submit(book: Path, settings: Settings, ops: Operations, **options: object) -> str:
    submission = _submission(book, settings, ops, **options)
    return submit_request(submission, storage=ops.storage, ledger=ops.ledger, app=ops.app, tenant="press").job


def _plan(job: str, settings: Settings, ops: Operations, holder: str = "test") -> str:
    return plan_submitted(job, ledger=ops.ledger, app=ops.app, settings=settings, holder=holder)


def _control_messages(ledger: Ledger) -> list[dict[str, object]]:
    return [json.loads(raw)["headers"] for raw in ledger.redis.lrange(CONTROL_QUEUE, 0, -1)]


def test_a_request_planned_by_the_control_plane_gives_the_plan_and_id_of_planning_at_once(
    settings: Settings, ops: Operations, tmp_path: Path
) -> None:
    book = write_book(tmp_path)
    inline = _submission(book, settings, ops, length_scale=1.1).plan()

    job = _submit(book, settings, ops, length_scale=1.1)

    assert job == inline.job
    status = ops.ledger.status(job)
    assert (status.state, status.total, status.meta["tenant"]) == ("planning", 0, "press")
    assert not ops.ledger.redis.sismember(SCHED_ACTIVE, job), "the dispatcher must not see a job without a plan"
    assert [m["task"] for m in _control_messages(ops.ledger)] == ["voxfarm.plan"]
    assert not ops.storage.exists(plan_path(job))

    assert _plan(job, settings, ops) == "queued"

    planned = load_plan(ops.storage, job)
    assert [(s.index, s.key, s.text, s.bucket) for s in planned.segments] == [
        (s.index, s.key, s.text, s.bucket) for s in inline.segments
    ]
    assert [c.title for c in planned.chapters] == [c.title for c in inline.chapters]
    assert planned.params == inline.params and planned.assembly == inline.assembly
    status = ops.ledger.status(job)
    assert (status.state, status.total, status.meta["planning"]) == ("queued", inline.segments_total, "0")
    assert ops.ledger.redis.sismember(SCHED_ACTIVE, job)
    assert _plan(job, settings, ops) == "queued", "a second plan task changes nothing"
    assert ops.ledger.status(job).total == inline.segments_total


def test_pause_and_priority_given_while_planning_are_kept_and_cancel_wins(
    settings: Settings, ops: Operations, tmp_path: Path
) -> None:
    paused = _submit(write_book(tmp_path), settings, ops)
    ops.pause(paused)
    ops.set_priority(paused, 80)

    assert _plan(paused, settings, ops) == "queued"

    status = ops.ledger.status(paused)
    assert (status.state, status.meta["priority"], status.meta["tenant"]) == ("paused", "80", "press")
    assert status.total > 0 and ops.ledger.redis.sismember(SCHED_ACTIVE, paused)
    ops.resume(paused)
    assert ops.ledger.status(paused).state == "queued"

    cancelled = _submit(
        write_book(tmp_path, name="other.md", text="# Other\n\nA different book entirely."), settings, ops
    )
    ops.cancel(cancelled)
    assert _plan(cancelled, settings, ops) == "cancelled"
    assert ops.ledger.status(cancelled).state == "cancelled"
    assert not ops.storage.exists(plan_path(cancelled))
    # Cancelled after the plan task looked, before it handed the job on: the hand-on is refused.
    assert ops.ledger.finish_planning(cancelled, total=3, reused=[], meta={}) is None
    assert ops.ledger.status(cancelled).state == "cancelled"


def test_bad_input_found_only_by_planning_fails_the_job_with_its_reason(
    settings: Settings, ops: Operations, tmp_path: Path
) -> None:
    job = _submit(write_book(tmp_path), settings, ops)
    # The voice was removed from the farm between submission and planning.
    store_request(ops.storage, load_request(ops.storage, job).model_copy(update={"voice": "retired-voice"}))

    assert _plan(job, settings, ops) == "failed"

    status = ops.ledger.status(job)
    assert status.state == "failed"
    assert "retired-voice" in status.meta["error"]
    assert not ops.ledger.redis.sismember(SCHED_ACTIVE, job)


def test_one_planner_at_a_time_and_a_stalled_planning_is_sent_again(
    settings: Settings, ops: Operations, tmp_path: Path
) -> None:
    job = _submit(write_book(tmp_path), settings, ops)
    ops.ledger.redis.set(plan_lock_key(job), "another replica", ex=60)

    assert _plan(job, settings, ops) == "planned elsewhere"
    assert ops.ledger.status(job).state == "planning"
    stalled = settings.model_copy(update={"reconcile_stall_s": 0.01})
    reconciler = Reconciler(storage=ops.storage, ledger=ops.ledger, app=ops.app, settings=stalled)
    time.sleep(0.05)
    assert reconciler.run_once() == [], "a job whose planner holds the lock is left to it"

    ops.ledger.redis.delete(plan_lock_key(job))  # that replica died: its lock expired
    ops.ledger.redis.delete(CONTROL_QUEUE)
    results = reconciler.run_once()

    assert [(r.job, r.planning) for r in results] == [(job, True)]
    assert [m["task"] for m in _control_messages(ops.ledger)] == ["voxfarm.plan"]
    assert _plan(job, settings, ops) == "queued"


def test_a_request_outlives_redis_losing_its_data_before_and_after_planning(
    settings: Settings, ops: Operations, tmp_path: Path
) -> None:
    job = _submit(write_book(tmp_path), settings, ops)
    ops.set_priority(job, 70)
    ops.ledger.redis.flushdb()
    assert unfinished_jobs_in_storage(ops.storage) == [job]

    result = resume_job(job, storage=ops.storage, ledger=ops.ledger, app=ops.app, settings=settings, unpause=False)

    assert (result.rebuilt, result.planning) == (True, True)
    status = ops.ledger.status(job)
    assert (status.state, status.meta["tenant"], status.meta["priority"]) == ("planning", "press", "70")
    assert [m["task"] for m in _control_messages(ops.ledger)] == ["voxfarm.plan"]

    # Lost again as the control plane takes the plan task: it stores nothing, and resume hands it over again.
    ops.ledger.redis.flushdb()
    assert _plan(job, settings, ops) == "gone"
    assert not ops.storage.exists(plan_path(job))
    result = resume_job(job, storage=ops.storage, ledger=ops.ledger, app=ops.app, settings=settings, unpause=False)
    assert result.planning and _plan(job, settings, ops) == "queued"
    status = ops.ledger.status(job)
    assert (status.state, status.meta["priority"], status.total) == (
        "queued",
        "70",
        load_plan(ops.storage, job).segments_total,
    )


def test_submit_of_a_large_book_returns_its_job_while_the_control_plane_plans(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    book = write_book(tmp_path)
    env = {
        "VOXFARM_REDIS_URL": redis_url,
        "VOXFARM_STORAGE_URL": (tmp_path / "store").as_uri(),
        "VOXFARM_PLAN_INLINE_CHARS": "0",
        "PATH": str(Path(sys.executable).parent),
    }

    def submit(*options: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "producer.cli", "submit", str(book), *options]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    run = submit("--json", "--tenant", "press")

    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["planning"] is True and result["total"] == 0
    ledger = Ledger(redis.Redis.from_url(redis_url))
    assert ledger.status(result["job"]).state == JobState.PLANNING

    bad = submit("--voice", "no-such-voice")
    assert bad.returncode == 2, bad.stderr
    assert "no-such-voice" in bad.stderr
    assert ledger.jobs() == [result["job"]], "a submission refused at once registers nothing"


def test_a_job_submitted_again_while_it_is_planned_is_refused(
    settings: Settings, ops: Operations, tmp_path: Path
) -> None:
    book = write_book(tmp_path)
    job = _submit(book, settings, ops)
    with pytest.raises(BadInputError, match="still planning"):
        _submit(book, settings, ops)
    assert load_request(ops.storage, job).book.title == "The Lighthouse Keepers"
