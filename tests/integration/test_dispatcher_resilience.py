"""The dispatcher on a real Redis and real local storage, when one job or one cycle goes wrong.

One job's unreadable plan, a bug in a cycle, a plan load longer than the
lease, a job reloaded, a segment given up, a ledger entry half rebuilt: in
each the other jobs keep being dispatched, and no replica loses its place.
A cancel that lands while a resume is reading the job wins.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis

from producer.dispatcher import Dispatcher
from producer.ingest import load_book
from producer.operations import Operations
from producer.planner import PlanOptions, default_params, plan_book
from producer.resume import Reconciler
from producer.submit import submit_plan
from shared.buckets import BucketPolicy
from shared.celery_app import create_app
from shared.errors import ConflictError
from shared.keys import plan_path
from shared.ledger import JobState, Ledger
from shared.redis_keys import SCHED_ACTIVE
from shared.schema import JobPlan
from shared.settings import Settings, load_settings
from shared.storage import LocalStorage
from shared.voices import VoiceRegistry
from tests.support.books import write_book

pytestmark = pytest.mark.timeout(300)


def book(directory: Path, title: str, sentences: int = 12) -> Path:
    lines = [f"{title} says line {n} of the story about the harbour." for n in range(1, sentences + 1)]
    text = f"---\ntitle: {title}\nlanguage: en\n---\n\n# {title}\n\n## One\n\n" + "\n\n".join(lines) + "\n"
    return write_book(directory, text, f"{title.lower()}.md")


class Farmless:
    """Redis, local storage and the settings a dispatcher needs; no workers (nothing consumes the queues)."""

    def __init__(self, redis_url: str, root: Path, **settings: object) -> None:
        self.storage = LocalStorage(root / "storage")
        self.settings: Settings = load_settings(redis_url=redis_url, storage_url=self.storage.root.as_uri(), **settings)
        self.ledger = Ledger(redis.Redis.from_url(redis_url))
        self.app = create_app(self.settings)
        self.voice = VoiceRegistry().resolve(self.settings.voice)
        self.books = root / "books"
        self.books.mkdir()

    def submit(self, title: str, sentences: int = 12) -> JobPlan:
        options = PlanOptions(
            "piper-onnx", self.voice, default_params(self.voice), BucketPolicy.from_edges(self.settings.bucket_edges)
        )
        plan = plan_book(load_book(book(self.books, title, sentences)), options)
        submit_plan(plan, storage=self.storage, ledger=self.ledger, app=self.app)
        return plan

    def dispatcher(self, holder: str = "replica-a") -> Dispatcher:
        return Dispatcher(storage=self.storage, ledger=self.ledger, app=self.app, settings=self.settings, holder=holder)

    def sent(self, plan: JobPlan) -> int:
        return len(self.ledger.sent_times(plan.job))


@pytest.fixture
def farm(redis_url: str, tmp_path: Path) -> Farmless:
    return Farmless(redis_url, tmp_path, dispatch_window=4)


def test_a_job_whose_plan_cannot_be_read_waits_and_the_others_are_dispatched(farm: Farmless) -> None:
    newer, damaged, healthy = farm.submit("Newer"), farm.submit("Damaged"), farm.submit("Healthy")
    document = json.loads(farm.storage.get_bytes(plan_path(newer.job)))
    document["engine"] = "qwen9-tts"  # a plan written by a newer voxfarm during a rolling upgrade
    farm.storage.put_bytes(plan_path(newer.job), json.dumps(document).encode())
    farm.storage.put_bytes(plan_path(damaged.job), b'{"job": "truncated')
    dispatcher = farm.dispatcher()
    first = dispatcher.cycle()
    assert first.held and first.dispatched > 0
    assert farm.sent(healthy) > 0 and farm.sent(newer) == farm.sent(damaged) == 0
    assert set(dispatcher.jobs) == {healthy.job}


def test_a_bug_in_a_cycle_does_not_end_the_dispatcher_thread(farm: Farmless) -> None:
    plan = farm.submit("Survivor")
    dispatcher = farm.dispatcher()
    real_select, failures = dispatcher._select, []

    def broken_once(room: dict[str, int]) -> list:  # type: ignore[type-arg]
        if not failures:
            failures.append(1)
            raise ZeroDivisionError("a weight of 0 in a hand-edited tenants file")
        return real_select(room)

    dispatcher._select = broken_once  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while farm.sent(plan) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = thread.is_alive()
    stop.set()
    thread.join(10)
    assert failures and alive, "the thread went on after the error"
    assert farm.sent(plan) > 0, "and dispatched afterwards"


def test_loading_plans_longer_than_the_lease_keeps_the_lease(redis_url: str, tmp_path: Path) -> None:
    farm = Farmless(redis_url, tmp_path, dispatch_window=4, lease_ttl_s=0.6)
    plans = [farm.submit(title) for title in ("One", "Two", "Three", "Four")]
    a, b = farm.dispatcher("replica-a"), farm.dispatcher("replica-b")
    real_load = a._load

    def slow_load(job: str, gen: str, created_at: float):  # type: ignore[no-untyped-def]
        time.sleep(0.3)  # four of these outlast the lease: a 20,000-segment plan takes about a second
        return real_load(job, gen, created_at)

    a._load = slow_load  # type: ignore[method-assign]
    taken: list[bool] = []
    rival = threading.Timer(0.9, lambda: taken.append(b.cycle().held))
    rival.start()
    result = a.cycle()
    rival.join()
    assert taken == [False], "the other replica found the lease held while the plans loaded"
    assert result.held and result.dispatched > 0 and a.lease.token == 1
    assert all(farm.sent(plan) > 0 for plan in plans)


def test_a_reloaded_job_keeps_its_place_in_the_fair_order(farm: Farmless) -> None:
    first, second = farm.submit("Early", 30), farm.submit("Later", 30)
    dispatcher = farm.dispatcher()
    dispatcher.cycle()
    served = dispatcher.jobs[first.job].share.virtual_s
    assert served > 0
    farm.ledger.redis.hset(f"voxfarm:job:{first.job}:meta", "gen", "resumed")  # what resume and priority do
    dispatcher.cycle()
    assert dispatcher.jobs[first.job].gen == "resumed"
    assert dispatcher.jobs[first.job].share.virtual_s >= served, "not back at zero, ahead of everyone"
    assert second.job in dispatcher.jobs


def test_a_segment_given_up_leaves_the_work_in_flight(farm: Farmless) -> None:
    plan = farm.submit("Poison", 8)
    dispatcher = farm.dispatcher()
    dispatcher.cycle()
    work = dispatcher.jobs[plan.job]
    in_flight = sorted(farm.ledger.sent_times(plan.job))
    assert work.in_flight == len(in_flight) > 0
    farm.ledger.mark_failed(plan.job, in_flight, "EngineError: the voice cannot say it", attempts=4)
    dispatcher.cycle()
    assert work.in_flight == 0, "a dead-lettered segment no longer counts against its tenant's quota"
    pending = {i for units in work.pending.values() for unit in units for i in unit.indexes}
    assert not pending & set(in_flight), "and is not sent again until someone resumes the job"


def test_a_late_counter_does_not_make_a_lost_job_look_present(farm: Farmless) -> None:
    plan = farm.submit("Forgotten", 4)
    farm.ledger.redis.flushdb()  # Redis lost everything; a worker still retries one of the job's segments
    farm.ledger.count(plan.job, "retries")
    assert not farm.ledger.exists(plan.job)
    assert not farm.ledger.mark_done(plan.job, [0]).known
    assert not farm.ledger.mark_failed(plan.job, [1], "EngineError: x", attempts=4)
    reconciler = Reconciler(storage=farm.storage, ledger=farm.ledger, app=farm.app, settings=farm.settings)
    reconciler.run_once()
    assert farm.ledger.status(plan.job).state in (JobState.QUEUED, JobState.RENDERING), "rebuilt from storage"


def test_one_job_the_reconciler_cannot_resume_does_not_stop_the_others(farm: Farmless) -> None:
    broken, healthy = farm.submit("Broken", 4), farm.submit("Whole", 4)
    farm.storage.put_bytes(plan_path(broken.job), b'{"job": "truncated')
    farm.ledger.redis.flushdb()
    reconciler = Reconciler(storage=farm.storage, ledger=farm.ledger, app=farm.app, settings=farm.settings)
    reconciler.run_once()
    assert farm.ledger.exists(healthy.job), "the healthy job is rebuilt although the broken one sorts first"


def test_a_queued_job_waiting_its_turn_is_not_taken_for_stalled(redis_url: str, tmp_path: Path) -> None:
    farm = Farmless(redis_url, tmp_path, reconcile_stall_s=0.01)
    plan = farm.submit("Patient", 4)
    time.sleep(0.05)  # longer than the stall threshold: only its being in the dispatcher's set keeps it
    assert farm.ledger.redis.sismember(SCHED_ACTIVE, plan.job)
    gen = farm.ledger.status(plan.job).meta["gen"]
    reconciler = Reconciler(storage=farm.storage, ledger=farm.ledger, app=farm.app, settings=farm.settings)
    assert reconciler.run_once() == []
    assert farm.ledger.status(plan.job).meta["gen"] == gen, "not resumed, so not reloaded by the dispatcher"


def test_a_cancel_that_lands_while_a_resume_reads_storage_wins(farm: Farmless, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = farm.submit("Contested")
    operations = Operations(farm.storage, farm.ledger, farm.app, farm.settings)
    operations.pause(plan.job)
    read_done = farm.ledger.done_indexes

    def cancelled_meanwhile(job: str) -> set[int]:  # another user's cancel, between the resume's read and write
        operations.cancel(job)
        return read_done(job)

    monkeypatch.setattr(farm.ledger, "done_indexes", cancelled_meanwhile)
    with pytest.raises(ConflictError, match="cancelled while it was being resumed"):
        operations.resume(plan.job)

    assert farm.ledger.status(plan.job).state == JobState.CANCELLED
    assert farm.dispatcher().cycle().dispatched == 0 and farm.sent(plan) == 0
