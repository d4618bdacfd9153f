"""`voxfarm bench --admission`: how fast a big book is submitted and admitted, and what Redis holds meanwhile.

The steps of a job are timed apart, because they cost different things:

- the submit command of a large book (``producer/deferred.py``): read the
  book, check its options, store the request, register the job;
- planning in the control plane (normalise, phonemise: the CPU work of the
  frontend, in a child process), with the plan stored and the job handed to
  the dispatcher; meanwhile the dispatcher admits a second book, to show
  that planning does not slow it;
- submit of a plan (``submit_plan``, what a small book's submit costs after
  planning): store the plan, find which segments are already stored
  (listing the key shards), register the job in the ledger;
- admission: dispatcher cycles that push messages into the bucket queues,
  once with a window as large as the book (every segment in one cycle),
  and in steady state with the configured window while the queues are
  drained as workers would drain them.

Redis is a private server started for the run, so its memory figures are
the job's alone; storage is the configured one (``VOXFARM_STORAGE_URL``,
to measure an object store), else a temporary folder. The book is made of
distinct synthetic utterances, so nothing is shared or reused.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from producer.api.models import BookOptions
from producer.deferred import plan_submitted, submit_request
from producer.dispatcher import Dispatcher
from producer.embedded import LocalRedis
from producer.request import REQUEST_FILE, submission_from_args
from producer.submit import SUBMISSION_FILE, load_plan, submit_plan
from shared.celery_app import create_app
from shared.errors import VoxfarmError
from shared.keys import job_dir
from shared.ledger import JobState, Ledger
from shared.settings import Settings, load_settings
from shared.storage import Storage, open_storage

WORDS = [
    "amber",
    "bright",
    "cedar",
    "dawn",
    "ember",
    "frost",
    "grove",
    "harbor",
    "island",
    "jade",
    "kestrel",
    "lantern",
    "meadow",
    "north",
    "orchard",
    "pebble",
    "quiet",
    "river",
    "stone",
    "thistle",
]


def synthetic_utterances(path: Path, count: int) -> Path:
    """``count`` short, distinct utterances as a JSONL file: a book of any size, all of it new work."""
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            a, b, c = WORDS[i % 20], WORDS[(i // 20) % 20], WORDS[(i // 400) % 20]
            handle.write(json.dumps({"id": f"u{i}", "text": f"{a.title()} {b} {c}, number {i}."}) + "\n")
    return path


@dataclass(frozen=True)
class AdmissionOptions:
    segments: int = 20_000
    window: int | None = None
    """Messages per bucket queue in steady state (default: VOXFARM_DISPATCH_WINDOW)."""
    steady_segments: int = 4_000
    """Segments the steady-state phase admits (its cycles are short: a window each)."""
    other_segments: int = 2_000
    """A second book, dispatched while the first is planned (at most this many segments)."""


@contextmanager
def bench_storage(settings: Settings) -> Iterator[Storage]:
    """The configured store, else a temporary folder removed afterwards."""
    if settings.storage_url:
        yield Storage.from_settings(settings)
        return
    folder = Path(tempfile.mkdtemp(prefix="voxfarm-bench-storage-"))
    try:
        yield open_storage(folder.as_uri())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_admission(options: AdmissionOptions) -> dict[str, Any]:
    base = load_settings()
    work = Path(tempfile.mkdtemp(prefix="voxfarm-bench-admission-"))
    server = LocalRedis()
    server.start()
    try:
        with bench_storage(base) as storage:
            settings = base.model_copy(update={"redis_url": server.url})
            if options.window:
                settings = settings.model_copy(update={"dispatch_window": options.window})
            return _measure(options, settings, storage, work)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def _measure(options: AdmissionOptions, settings: Settings, storage: Storage, work: Path) -> dict[str, Any]:
    book = synthetic_utterances(work / f"bench-{options.segments}.jsonl", options.segments)
    client = redis.Redis.from_url(settings.broker_url)
    ledger, app = Ledger(client), create_app(settings)
    job = ""
    try:
        baseline = used_memory(client)
        # `voxfarm submit BOOK` of a large book: read and check it, store the request, register it.
        started = time.perf_counter()
        submission = submission_from_args(submit_args(book), settings, storage)
        job = submit_request(submission, storage=storage, ledger=ledger, app=app).job
        command_s = time.perf_counter() - started
        # The control plane's half: phonemise, store the plan, find what is stored, hand the job on; meanwhile
        # the dispatcher feeds another job, as it would on a busy farm.
        other_count = min(options.other_segments, options.segments)
        other = _planned_job(work, other_count, settings=settings, storage=storage, ledger=ledger, app=app)
        dispatcher = Dispatcher(storage=storage, ledger=ledger, app=app, settings=settings, holder="bench-planning")
        dispatcher.cycle()
        outcome: list[str] = []
        planner = threading.Thread(
            target=lambda: outcome.append(
                plan_submitted(job, ledger=ledger, app=app, settings=settings, holder="bench")
            )
        )
        started = time.perf_counter()
        planner.start()
        while_planning = steady_state(dispatcher, client, ledger, other, other_count, going=planner.is_alive)
        planner.join()
        plan_s = time.perf_counter() - started
        dispatcher.lease.release()
        if outcome != [JobState.QUEUED]:
            raise VoxfarmError(f"the bench's book was not planned: {outcome}")
        plan = load_plan(storage, job)
        registered = used_memory(client)

        # What a small book's submit costs after planning: the plan stored, keys listed, the ledger written.
        client.flushdb()
        started = time.perf_counter()
        submitted = submit_plan(plan, storage=storage, ledger=ledger, app=app, replace=True)
        submit_s = time.perf_counter() - started

        windowed = Dispatcher(storage=storage, ledger=ledger, app=app, settings=settings, holder="bench-windowed")
        first = windowed.cycle()
        windowed_memory = used_memory(client)
        steady = steady_state(windowed, client, ledger, plan.job, options.steady_segments)
        windowed.lease.release()

        # The whole book in one cycle: registered afresh, a window as large as the book.
        client.flushdb()
        submit_plan(plan, storage=storage, ledger=ledger, app=app, replace=True)
        unbounded = settings.model_copy(update={"dispatch_window": plan.segments_total})
        whole = Dispatcher(storage=storage, ledger=ledger, app=app, settings=unbounded, holder="bench-whole")
        started = time.perf_counter()
        admitted = whole.cycle()
        whole_s = time.perf_counter() - started
        whole_memory = used_memory(client)
        whole.lease.release()
    finally:
        if job:
            for name in ("plan.json", REQUEST_FILE, SUBMISSION_FILE):
                storage.delete(f"{job_dir(job)}/{name}")
    return {
        "segments": plan.segments_total,
        "storage": storage.describe(),
        "submit_command_s": round(command_s, 3),
        "plan_s": round(plan_s, 2),
        "plan_segments_per_s": round(plan.segments_total / plan_s),
        "submit_s": round(submit_s, 3),
        "submit_registered": submitted.enqueued,
        "whole_book_cycle_s": round(whole_s, 3),
        "whole_book_admitted": admitted.dispatched,
        "whole_book_segments_per_s": round(admitted.dispatched / whole_s),
        "window": settings.dispatch_window,
        "windowed_first_cycle": first.dispatched,
        **steady,
        "planning_cycles": while_planning["steady_cycles"],
        "planning_cycle_ms": while_planning["steady_cycle_ms"],
        "planning_segments_per_s": while_planning["steady_segments_per_s"],
        "redis_baseline_mb": mb(baseline),
        "redis_registered_mb": mb(registered),
        "redis_windowed_mb": mb(windowed_memory),
        "redis_whole_book_mb": mb(whole_memory),
    }


def _planned_job(work: Path, count: int, *, settings: Settings, storage: Storage, ledger: Ledger, app: Celery) -> str:
    """A second book of ``count`` utterances, planned and handed to the dispatcher."""
    book = synthetic_utterances(work / f"other-{count}.jsonl", count)
    submission = submission_from_args(submit_args(book), settings, storage)
    job = submit_request(submission, storage=storage, ledger=ledger, app=app).job
    plan_submitted(job, ledger=ledger, app=app, settings=settings, holder="bench-other")
    return job


def submit_args(book: Path) -> argparse.Namespace:
    """`voxfarm submit BOOK` with every option left at its default."""
    return argparse.Namespace(book=book, **BookOptions().planner_options())


def steady_state(
    dispatcher: Dispatcher,
    client: redis.Redis,
    ledger: Ledger,
    job: str,
    target: int,
    *,
    going: Callable[[], bool] = lambda: True,
) -> dict[str, Any]:
    """Cycles with the window, each after the queues were emptied and their segments marked done (a fast farm)."""
    dispatched, cycles, cycle_s = 0, 0, 0.0
    while dispatched < target and going():
        drained = drain(client, ledger, job)
        started = time.perf_counter()
        result = dispatcher.cycle()
        cycle_s += time.perf_counter() - started
        if not result.dispatched and not drained:
            break  # the book is done
        dispatched += result.dispatched
        cycles += 1
    return {
        "steady_cycles": cycles,
        "steady_admitted": dispatched,
        "steady_cycle_ms": round(1000 * cycle_s / max(cycles, 1), 2),
        "steady_segments_per_s": round(dispatched / cycle_s) if cycle_s else 0,
    }


def drain(client: redis.Redis, ledger: Ledger, job: str) -> int:
    """Take every queued message of the job, as workers would, and mark its segments done."""
    indexes: list[int] = []
    for queue in client.scan_iter(match="voxfarm.*.b*", _type="list"):
        pipe = client.pipeline(transaction=True)
        pipe.lrange(queue, 0, -1)
        pipe.delete(queue)
        payloads = pipe.execute()[0]
        for payload in payloads:
            kwargs = json.loads(base64.b64decode(json.loads(payload)["body"]))[1]
            for task in kwargs.get("unit", [kwargs.get("segment")]):
                indexes += task["indexes"]
    if indexes:
        ledger.mark_done(job, indexes)
    return len(indexes)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def mb(value: int) -> float:
    return round(value / 2**20, 1)


def format_admission(report: dict[str, Any]) -> str:
    r = report
    rows = [
        (
            "`voxfarm submit` (book read, request stored)",
            f"{r['submit_command_s']:.2f} s",
            "planning left to the control plane",
        ),
        (
            "planning in the control plane (phonemise...)",
            f"{r['plan_s']:.2f} s",
            f"{r['plan_segments_per_s']:,} segments/s",
        ),
        (
            "admission of another book meanwhile",
            f"{r['planning_cycle_ms']:.1f} ms",
            f"{r['planning_segments_per_s']:,} segments/s ({r['planning_cycles']} cycles)",
        ),
        (
            "submit of a plan (stored, keys listed, registered)",
            f"{r['submit_s']:.2f} s",
            f"{r['submit_registered']:,} registered",
        ),
        (
            "admission, whole book in one cycle",
            f"{r['whole_book_cycle_s']:.2f} s",
            f"{r['whole_book_segments_per_s']:,} segments/s",
        ),
        (
            f"admission, steady state (window {r['window']})",
            f"{r['steady_cycle_ms']:.1f} ms",
            f"{r['steady_segments_per_s']:,} segments/s ({r['steady_cycles']} cycles)",
        ),
    ]
    lines = [f"admission of {r['segments']:,} segments (storage {r['storage']}; a private Redis)"]
    lines += [f"    {what:<48} {took:>9}   {rate}" for what, took, rate in rows]
    lines.append(
        f"    Redis used memory: empty {r['redis_baseline_mb']} MB, registered {r['redis_registered_mb']} MB, "
        f"one window {r['redis_windowed_mb']} MB, whole book queued {r['redis_whole_book_mb']} MB"
    )
    return "\n".join(lines)
