"""GET /v1/jobs/{job}/events: a job's progress as Server-Sent Events.

One ``progress`` event whenever the job's state or counts change (checked
twice a second; the ETA alone moving is no change), a comment every 15 s so
proxies keep the stream open, and
a last ``end`` event when the job is done, failed or cancelled; then the
stream closes. ``Last-Event-ID`` is not needed: every event is the whole
state, so a reconnecting client loses nothing. A token holds at most
``api_open_requests_per_token`` streams open at once (``auth.OpenRequests``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from producer.api.auth import Reader, farm_of, open_requests
from producer.api.farm import Farm, eta_seconds
from producer.api.models import JobOut
from shared.errors import NotFoundError, RetryableError
from shared.ledger import JobState

router = APIRouter(tags=["jobs"])
POLL_S = 0.5
HEARTBEAT_S = 15.0
_ENDED = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


def sse(event: str, data: str, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


async def progress_events(farm: Farm, tenant: str, job: str, request: Request) -> AsyncIterator[bytes]:
    last = ""
    sequence = 0
    quiet_since = time.monotonic()
    yield b"retry: 2000\n\n"
    while not await request.is_disconnected():
        try:
            status = await run_in_threadpool(farm.status, tenant, job)
        except NotFoundError:
            yield sse("end", '{"state": "expired"}')
            return
        except RetryableError:
            await asyncio.sleep(POLL_S * 4)  # Redis is away: keep the stream, try again
            continue
        document = JobOut.of(status, eta_seconds(status)).model_dump_json()
        progress = JobOut.of(status).model_dump_json()  # what changed, the ETA left out: it moves on every poll
        if progress != last:
            sequence += 1
            last = progress
            quiet_since = time.monotonic()
            yield sse("progress", document, sequence)
        elif time.monotonic() - quiet_since > HEARTBEAT_S:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"
        if status.state in _ENDED:
            yield sse("end", document, sequence + 1)
            return
        await asyncio.sleep(POLL_S)


@router.get("/v1/jobs/{job}/events", summary="progress as Server-Sent Events until the job ends")
async def job_events(job: str, request: Request, caller: Reader) -> StreamingResponse:
    farm = farm_of(request)
    await run_in_threadpool(farm.status, caller.tenant, job)  # 404 before the stream starts
    holds = open_requests(request)
    holds.take(caller)  # 429 now, before the stream starts, if the token holds too many open
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        progress_events(farm, caller.tenant, job, request),
        media_type="text/event-stream",
        headers=headers,
        background=BackgroundTask(holds.give_back, caller),  # runs when the stream ends, or its client leaves
    )
