"""Submit a job: store its plan, skip what is already rendered, enqueue the rest.

The plan goes to storage first, so whatever happens to Redis afterwards the
job can be rebuilt from it. Identical sentences inside a book share one
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

from celery import Celery

from shared.buckets import CONTROL_QUEUE, interactive_queue_name, queue_name
from shared.celery_app import ASSEMBLE_TASK, SYNTHESIZE_TASK
from shared.engines import SECONDS_PER_TOKEN
from shared.errors import BadInputError, BrokerError, NotFoundError
from shared.keys import job_dir, plan_path, segment_path
from shared.ledger import JobState, Ledger
from shared.schema import JobPlan, SegmentPlan, SegmentTask
from shared.storage import LocalStorage, Storage

log = logging.getLogger(__name__)

SUBMISSION_FILE = "submission.json"


@dataclass(frozen=True)
class SubmitResult:
    job: str
    total: int
    reused: int
    enqueued: int
    """Messages sent (one per distinct missing content key)."""
    completed: bool
    """True when nothing needed rendering and assembly was enqueued at once."""


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
    priority: str = "bulk",
    replace: bool = False,
    cover: bytes | None = None,
) -> SubmitResult:
    if ledger.exists(plan.job) and not replace:
        state = ledger.status(plan.job).state
        if state in (JobState.RENDERING, JobState.ASSEMBLING):
            raise BadInputError(
                f"job {plan.job} is still {state}; follow it with `voxfarm watch {plan.job}` "
                f"or re-enqueue what is missing with `voxfarm resume {plan.job}`"
            )
    if plan.cover and cover:
        storage.put_bytes(plan.cover, cover, "application/octet-stream")
    storage.put_bytes(plan_path(plan.job), plan.model_dump_json().encode(), "application/json")
    groups = group_by_key(plan.segments)
    present = plan_stored_keys(storage, plan, groups)
    reused = [seg.index for key in present for seg in groups[key]]
    missing = [segments for key, segments in groups.items() if key not in present]
    record_submission(storage, plan.job, len(reused))
    mark = ledger.create_job(plan.job, total=plan.segments_total, reused=reused, meta=ledger_meta(plan))
    if mark.completed or not missing:
        send_assembly(app, plan.job)
        return SubmitResult(plan.job, plan.segments_total, len(reused), 0, True)
    enqueue_segments(plan, missing, app=app, ledger=ledger, priority=priority)
    return SubmitResult(plan.job, plan.segments_total, len(reused), len(missing), False)


def record_submission(storage: Storage, job: str, reused: int) -> None:
    """Keep what only the first submit knows (how many segments it reused) next to the plan."""
    document = {"reused": reused, "submitted_at": time.time()}
    storage.put_bytes(f"{job_dir(job)}/{SUBMISSION_FILE}", json.dumps(document).encode(), "application/json")


def submitted_reused(storage: Storage, job: str) -> int:
    try:
        return int(json.loads(storage.get_bytes(f"{job_dir(job)}/{SUBMISSION_FILE}"))["reused"])
    except (NotFoundError, ValueError, KeyError):
        return 0


def ledger_meta(plan: JobPlan, **extra: str | int | float) -> dict[str, str | int | float]:
    """What the ledger keeps about a job besides its segments."""
    estimate = sum(len(s.ids) for s in plan.segments) * plan.params.length_scale * SECONDS_PER_TOKEN
    return {
        "title": plan.title[:200],
        "voice": plan.voice,
        "engine": plan.engine,
        "model": plan.model,
        "chapters": len(plan.chapters),
        "audio_estimate_s": round(estimate, 1),
        **extra,
    }


def enqueue_segments(
    plan: JobPlan, groups: Sequence[Sequence[SegmentPlan]], *, app: Celery, ledger: Ledger, priority: str = "bulk"
) -> int:
    """Send one message per distinct key, over one pooled broker connection."""
    chapter_of = {seg.index: chapter.index for chapter in plan.chapters for seg in chapter.segments}
    voicing = {chapter.index: plan.conditioning_of(chapter) for chapter in plan.chapters}
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for segments in groups:
                first = segments[0]
                task = SegmentTask(
                    job=plan.job,
                    indexes=[s.index for s in segments],
                    chapter=chapter_of[first.index],
                    text=first.text,
                    ids=first.ids,
                    voice=plan.weights_of(first),
                    engine=plan.engine,
                    params=plan.params_of(first),
                    key=first.key,
                    bucket=first.bucket,
                    enqueued_at=time.time(),
                    priority="interactive" if priority == "interactive" else "bulk",
                    conditioning=voicing[chapter_of[first.index]],
                )
                model = plan.model_of(first)
                queue = (
                    interactive_queue_name(model) if task.priority == "interactive" else queue_name(model, first.bucket)
                )
                app.send_task(
                    SYNTHESIZE_TASK,
                    kwargs={"segment": task.model_dump(mode="json")},
                    queue=queue,
                    producer=producer,
                    # Celery would otherwise repr() every message for its headers: half the cost of a
                    # send, and the sentence's text in every monitoring event.
                    argsrepr="()",
                    kwargsrepr=f"{{'segment': '{task.job}#{task.indexes[0]}'}}",
                )
                sent += 1
                log.debug(
                    "segment enqueued",
                    extra={"job": plan.job, "segment": first.index, "key": first.key, "bucket": first.bucket},
                )
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
