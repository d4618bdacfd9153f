"""Submit a job: store its plan, skip what is already rendered, register the rest for dispatch.

The plan goes to storage first, so whatever happens to Redis afterwards the
job can be rebuilt from it. Submitting sends no segment: it registers the
job (tenant, priority, lane) in the ledger and wakes the dispatcher, which
feeds the bucket queues a bounded window at a time in fair order
(``producer/dispatcher.py``). Identical sentences inside a book share one
content key and one message (every index they stand at is marked when it
lands).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import redis
from celery import Celery

from producer.fairshare import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from shared.buckets import CONTROL_QUEUE, interactive_queue_name, queue_name
from shared.celery_app import ASSEMBLE_TASK, SYNTHESIZE_TASK
from shared.engines import engine_spec
from shared.errors import BadInputError, BrokerError, ConflictError, NotFoundError
from shared.keys import job_dir, plan_path, segment_path
from shared.ledger import LIVE_STATES, Ledger
from shared.locks import changing
from shared.names import check_tenant
from shared.redis_keys import SCHED_WAKE
from shared.schema import JobPlan, SegmentPlan, SegmentTask
from shared.storage import LocalStorage, Storage

log = logging.getLogger(__name__)

SUBMISSION_FILE = "submission.json"
DEFAULT_TENANT = "default"
Lane = str
"""'bulk' (the bucket queues) or 'interactive' (the model's priority lane)."""


@dataclass(frozen=True)
class SubmitResult:
    job: str
    total: int
    reused: int
    enqueued: int
    """Messages left to the dispatcher (one per distinct missing content key)."""
    completed: bool
    """True when nothing needed rendering and assembly was enqueued at once."""
    planning: bool = False
    """True when the control plane plans the job (``producer/deferred.py``): total and counts come later."""


def group_by_key(segments: Iterable[SegmentPlan]) -> dict[str, list[SegmentPlan]]:
    groups: dict[str, list[SegmentPlan]] = {}
    for segment in segments:
        groups.setdefault(segment.key, []).append(segment)
    return groups


LIST_THRESHOLD = 2000
"""From this many keys on, listing the voice's key shards beats one HEAD per key on an object store."""


def stored_keys(
    storage: Storage, voice: str, keys: Sequence[str], threads: int = 16, list_threshold: int = LIST_THRESHOLD
) -> set[str]:
    """Which keys already have audio: parallel HEADs for a few, shard listings for many."""
    if isinstance(storage, LocalStorage) or len(keys) < 8:
        return {key for key in keys if storage.exists(segment_path(voice, key))}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        if len(keys) < list_threshold:
            found = pool.map(lambda key: storage.exists(segment_path(voice, key)), keys)
            return {key for key, present in zip(keys, found, strict=True) if present}
        # Segments live at segments/<voice>/<key[:2]>/<key>.flac: one listing per shard the keys fall in.
        wanted = set(keys)
        shards = sorted({key[:2] for key in keys})
        listed = pool.map(lambda shard: list(storage.list(f"segments/{voice}/{shard}")), shards)
        names = {path.rsplit("/", 1)[-1].removesuffix(".flac") for paths in listed for path in paths}
        return wanted & names


def plan_stored_keys(storage: Storage, plan: JobPlan, groups: dict[str, list[SegmentPlan]]) -> set[str]:
    """Which of a plan's keys have audio, looked up in each voice's folder (a cast has several)."""
    by_folder: dict[str, list[str]] = {}
    for key, segments in groups.items():
        by_folder.setdefault(plan.weights_of(segments[0]), []).append(key)
    return {key for folder, keys in by_folder.items() for key in stored_keys(storage, folder, keys)}


def submit_plan(
    plan: JobPlan,
    *,
    storage: Storage,
    ledger: Ledger,
    app: Celery,
    lane: Lane = "bulk",
    tenant: str = DEFAULT_TENANT,
    priority: int = DEFAULT_PRIORITY,
    replace: bool = False,
    cover: bytes | None = None,
) -> SubmitResult:
    check_scheduling(tenant, priority, lane)
    if not replace:
        check_not_live(ledger, plan.job)
    reused, missing = store_and_compare(storage, plan, cover)
    scheduling: dict[str, str | int] = {"tenant": tenant, "priority": priority, "lane": lane}
    record_submission(storage, plan.job, len(reused), scheduling)
    mark = ledger.create_job(plan.job, total=plan.segments_total, reused=reused, meta=ledger_meta(plan, **scheduling))
    if mark.completed or not missing:
        send_assembly(app, plan.job)
        return SubmitResult(plan.job, plan.segments_total, len(reused), 0, True)
    wake_dispatcher(ledger)
    return SubmitResult(plan.job, plan.segments_total, len(reused), len(missing), False)


def check_not_live(ledger: Ledger, job: str) -> None:
    """A job still being planned or rendered is followed or resumed, never submitted over."""
    if not ledger.exists(job):
        return
    state = ledger.status(job).state
    if state in LIVE_STATES:
        raise ConflictError(
            f"job {job} is still {state}; follow it with `voxfarm watch {job}` "
            f"or re-enqueue what is missing with `voxfarm resume {job}`"
        )


def store_and_compare(
    storage: Storage, plan: JobPlan, cover: bytes | None = None
) -> tuple[list[int], list[list[SegmentPlan]]]:
    """Store the plan and find what storage already has: (indexes reused, segments to render grouped by key)."""
    groups = group_by_key(plan.segments)
    with ThreadPoolExecutor(max_workers=1) as uploader:
        # The plan's upload and the existence check overlap; the ledger is written once both are done.
        uploaded = uploader.submit(store_plan, storage, plan, cover)
        present = plan_stored_keys(storage, plan, groups)
        uploaded.result()
    reused = [seg.index for key in present for seg in groups[key]]
    missing = [segments for key, segments in groups.items() if key not in present]
    return reused, missing


def store_plan(storage: Storage, plan: JobPlan, cover: bytes | None = None) -> None:
    if plan.cover and cover:
        storage.put_bytes(plan.cover, cover, "application/octet-stream")
    storage.put_bytes(plan_path(plan.job), plan.model_dump_json().encode(), "application/json")


def check_scheduling(tenant: str, priority: int, lane: Lane) -> None:
    check_tenant(tenant)
    check_priority(priority)
    if lane not in ("bulk", "interactive"):
        raise BadInputError(f"invalid lane {lane!r}: choose bulk or interactive")


def check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise BadInputError(
            f"invalid priority {priority!r}: use a whole number from {MIN_PRIORITY} to {MAX_PRIORITY} "
            f"(higher first; default {DEFAULT_PRIORITY})"
        )
    return priority


def wake_dispatcher(ledger: Ledger) -> None:
    """Let the dispatcher start a cycle now instead of at its next tick; losing the nudge costs one tick."""
    try:
        pipe = ledger.redis.pipeline(transaction=False)
        pipe.lpush(SCHED_WAKE, "1")
        pipe.ltrim(SCHED_WAKE, 0, 15)
        pipe.execute()
    except Exception as exc:  # redis raises many connection error types
        raise BrokerError(f"cannot reach Redis: {exc}; check VOXFARM_REDIS_URL") from exc


def record_submission(storage: Storage, job: str, reused: int, scheduling: dict[str, str | int] | None = None) -> None:
    """Keep what only the first submit knows (segments reused, tenant, priority) next to the plan."""
    document = {"reused": reused, "submitted_at": time.time(), **(scheduling or {})}
    storage.put_bytes(f"{job_dir(job)}/{SUBMISSION_FILE}", json.dumps(document).encode(), "application/json")


def read_submission(storage: Storage, job: str) -> dict[str, str | int | float]:
    try:
        document = json.loads(storage.get_bytes(f"{job_dir(job)}/{SUBMISSION_FILE}"))
    except (NotFoundError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def update_submission(storage: Storage, client: redis.Redis, job: str, **fields: str | int) -> None:
    """Keep an operation (priority, pause, cancel) in storage too, so a Redis that loses it loses nothing."""
    path = f"{job_dir(job)}/{SUBMISSION_FILE}"
    with changing(client, path):  # two operations at once must not each write back what they read
        document = read_submission(storage, job)
        document.update(fields)
        storage.put_bytes(path, json.dumps(document).encode(), "application/json")


def load_plan(storage: Storage, job: str) -> JobPlan:
    """The plan ``submit_plan`` stored (here, not in ``producer.assemble``: the command line's operations need it,
    and assembly's audio libraries take a second to import)."""
    try:
        raw = storage.get_bytes(plan_path(job))
    except NotFoundError as exc:
        raise NotFoundError(f"job {job!r} has no plan in {storage.describe()}; was it submitted there?") from exc
    return JobPlan.model_validate_json(raw)


def submitted_reused(storage: Storage, job: str) -> int:
    try:
        return int(str(read_submission(storage, job)["reused"]))
    except (KeyError, ValueError):
        return 0


def ledger_meta(plan: JobPlan, **extra: str | int | float) -> dict[str, str | int | float]:
    """What the ledger keeps about a job besides its segments."""
    spec = engine_spec(plan.engine)
    estimate = spec.estimate_s(sum(len(s.ids) for s in plan.segments), plan.params.length_scale)
    extra.setdefault("tenant", DEFAULT_TENANT)
    extra.setdefault("priority", DEFAULT_PRIORITY)
    extra.setdefault("lane", "bulk")
    return {
        "title": plan.title[:200],
        "voice": plan.voice,
        "engine": plan.engine,
        "model": plan.model,
        "chapters": len(plan.chapters),
        "audio_estimate_s": round(estimate, 1),
        **extra,
    }


def segment_tasks(plan: JobPlan, groups: Sequence[Sequence[SegmentPlan]], lane: Lane = "bulk") -> list[SegmentTask]:
    """One message body per distinct key: the first segment's text, every index it stands at.

    Built without validation (``model_construct``): the fields come from a plan that was validated when it
    was read, validating each again cost a third of a dispatch cycle, and workers validate every message
    they receive.
    """
    chapter_of = {seg.index: chapter for chapter in plan.chapters for seg in chapter.segments}
    now = time.time()
    tasks = []
    for segments in groups:
        first = segments[0]
        tasks.append(
            SegmentTask.model_construct(
                job=plan.job,
                indexes=[s.index for s in segments],
                chapter=chapter_of[first.index].index,
                text=first.text,
                ids=first.ids,
                voice=plan.weights_of(first),
                engine=plan.engine_of(first),
                params=plan.params_of(first),
                key=first.key,
                bucket=first.bucket,
                enqueued_at=now,
                priority="interactive" if lane == "interactive" else "bulk",
                conditioning=plan.voicing_of(first, chapter_of[first.index]),
            )
        )
    return tasks


def task_queue(plan: JobPlan, task: SegmentTask) -> str:
    """The queue of a message: its model's (a cast voice's own model, else the job's) lane or bucket."""
    model = plan.queue_model(task.voice)
    if task.priority == "interactive":
        return interactive_queue_name(model)
    return queue_name(model, task.bucket)


def send_options(task: SegmentTask) -> dict[str, str]:
    # Celery would otherwise repr() every message for its headers: half the cost of a send, and the
    # sentence's text in every monitoring event.
    return {"argsrepr": "()", "kwargsrepr": f"{{'segment': '{task.job}#{task.indexes[0]}'}}"}


def enqueue_segments(
    plan: JobPlan, groups: Sequence[Sequence[SegmentPlan]], *, app: Celery, ledger: Ledger, lane: Lane = "bulk"
) -> int:
    """Send one message per distinct key straight to the queues, bypassing the dispatcher.

    Kept for tools and tests that feed a queue by hand; jobs are dispatched by ``producer.dispatcher``.
    """
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for task in segment_tasks(plan, groups, lane):
                app.send_task(
                    SYNTHESIZE_TASK,
                    kwargs={"segment": task.model_dump(mode="json")},
                    queue=task_queue(plan, task),
                    producer=producer,
                    **send_options(task),
                )
                sent += 1
    except BrokerError:
        raise
    except Exception as exc:  # kombu/redis raise many connection error types
        raise BrokerError(f"cannot enqueue segments of {plan.job}: {exc}; check VOXFARM_REDIS_URL") from exc
    ledger.record_sent(plan.job, (s.index for group in groups for s in group))
    log.info("enqueued %d segments of %s", sent, plan.job, extra={"job": plan.job})
    return sent


def send_assembly(app: Celery, job: str) -> None:
    try:
        app.send_task(ASSEMBLE_TASK, kwargs={"job": job}, queue=CONTROL_QUEUE)
    except Exception as exc:
        raise BrokerError(f"cannot enqueue assembly of {job}: {exc}") from exc
