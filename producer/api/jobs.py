"""Jobs of the caller's tenant: list, detail with chapters, manifest, and the operations on them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from producer.api.auth import Reader, Submitter, check_caller_may_schedule, farm_of
from producer.api.farm import Farm, eta_seconds
from producer.api.models import ChapterOut, JobOut, PriorityIn
from shared.errors import NotFoundError
from shared.ledger import JobState

router = APIRouter(tags=["jobs"])
States = Annotated[JobState | None, Query(description="only jobs in this state")]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")]


def job_detail(farm: Farm, tenant: str, job: str) -> JobOut:
    """The job with its chapters (progress per chapter; files and durations once it is done)."""
    status = farm.status(tenant, job)
    out = JobOut.of(status, eta_seconds(status))
    chapters = [
        ChapterOut(index=c.index, title=c.title, segments=c.segments, segments_done=c.done)
        for c in farm.chapters(status)
    ]
    if status.state == JobState.DONE:
        try:
            manifest = farm.manifest(tenant, job)
        except NotFoundError:
            manifest = None
        if manifest is not None:
            by_index = {c.index: c for c in manifest.chapters}
            for chapter in chapters:
                found = by_index.get(chapter.index)
                if found is not None:
                    chapter.file, chapter.duration_s = found.file, round(found.duration_s, 2)
            out.files = dict(manifest.files)
    out.chapters = chapters
    return out


@router.get("/v1/jobs", summary="the caller's jobs, newest first")
def list_jobs(request: Request, caller: Reader, state: States = None, limit: Limit = 200) -> list[JobOut]:
    found = farm_of(request).jobs(caller.tenant, state.value if state else None, limit)
    return [JobOut.of(status, eta_seconds(status)) for status in found]


@router.get("/v1/jobs/{job}", summary="a job's progress, chapters, failures and files")
def get_job(job: str, request: Request, caller: Reader) -> JobOut:
    return job_detail(farm_of(request), caller.tenant, job)


@router.get("/v1/jobs/{job}/manifest", summary="manifest.json of a finished job")
def get_manifest(job: str, request: Request, caller: Reader) -> dict[str, Any]:
    return farm_of(request).manifest(caller.tenant, job).model_dump(mode="json")


@router.post("/v1/jobs/{job}/pause", summary="dispatch nothing more until resumed")
async def pause(job: str, request: Request, caller: Submitter) -> JobOut:
    status = await run_in_threadpool(farm_of(request).pause, caller.tenant, job)
    return JobOut.of(status)


@router.post("/v1/jobs/{job}/resume", summary="let a paused job go on, and re-dispatch what it lost")
async def resume(job: str, request: Request, caller: Submitter) -> JobOut:
    status = await run_in_threadpool(farm_of(request).resume, caller.tenant, job)
    return JobOut.of(status)


@router.post("/v1/jobs/{job}/cancel", summary="stop a job for good (stored audio stays)")
async def cancel(job: str, request: Request, caller: Submitter) -> JobOut:
    status = await run_in_threadpool(farm_of(request).cancel, caller.tenant, job)
    return JobOut.of(status)


@router.put("/v1/jobs/{job}/priority", summary="change a job's priority (0-100, higher first)")
async def set_priority(job: str, body: PriorityIn, request: Request, caller: Submitter) -> JobOut:
    check_caller_may_schedule(caller, farm_of(request), priority=body.priority)
    status = await run_in_threadpool(farm_of(request).set_priority, caller.tenant, job, body.priority)
    return JobOut.of(status)
