"""The fault-injection suite: a fault-free reference render, and helpers every scenario shares.

Scenarios render with the noise off, so a segment's audio depends only on
its input: after any fault, the assembled chapters must be sample-identical
to the reference, and storage must hold exactly one object per content key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis

from producer.embedded import LocalRedis
from shared.audio import decode_audio
from shared.keys import job_dir, manifest_path, plan_path, segment_path
from shared.ledger import Ledger
from shared.schema import JobPlan
from shared.storage import Storage, open_storage
from tests.support.fault_report import record
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.services import RedisService, SeaweedS3

FAULT_BOOK = """---
title: Fault Drill
author: Test Author
language: en
---

# Fault Drill

## The Harbour

The boats came in late that evening, heavy with the day's catch.
Gulls followed them all the way from the open water.
On the quay the children counted the sails as they passed the lighthouse.
An old man mended a net beside the harbour wall.

## The Market

Before dawn the market filled with voices and the smell of bread.
Traders called out their prices across the square.
A girl sold apples from a basket almost as big as she was.
By noon the stalls were empty and the square was quiet again.

## The Road Home

The road home wound between low stone walls and fields of barley.
Clouds gathered over the hills, but the rain held off.
They reached the village as the church bell rang seven.
Supper was waiting, and nobody spoke of the long day.
"""

QUIET = ("--noise-scale", "0", "--noise-w", "0", "--book-format", "none")
FAST = {
    "VOXFARM_VISIBILITY_TIMEOUT_S": "5",
    "VOXFARM_RECONCILE_INTERVAL_S": "1",
    "VOXFARM_RECONCILE_STALL_S": "4",
    "VOXFARM_RETRY_BACKOFF_S": "0.3",
    "VOXFARM_LOG_FORMAT": "json",
}


@dataclass(frozen=True)
class Reference:
    chapters: list[np.ndarray]
    segments: int


def write_fault_book(directory: Path) -> Path:
    path = directory / "fault-drill.md"
    path.write_text(FAULT_BOOK, encoding="utf-8")
    return path


def submit(farm: FarmProcesses, book: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    result = farm.cli("submit", str(book), "--json", *QUIET, *extra, extra_env=env or {})
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["job"])


def wait_done_at_least(redis_url: str, job: str, count: int, timeout_s: float = 120) -> int:
    ledger = Ledger(redis.Redis.from_url(redis_url))
    deadline = time.monotonic() + timeout_s
    while True:
        done = ledger.status(job).done
        if done >= count:
            return done
        assert time.monotonic() < deadline, f"{job}: only {done} segments done"
        time.sleep(0.05)


def chapter_audio(storage: Storage, job: str) -> list[np.ndarray]:
    manifest = json.loads(storage.get_bytes(manifest_path(job)))
    return [decode_audio(storage.get_bytes(f"{job_dir(job)}/{c['file']}"))[0] for c in manifest["chapters"]]


def assert_complete_and_identical(storage: Storage, redis_url: str, job: str, reference: Reference) -> None:
    """Done, one object per content key and nothing else, chapters sample-identical to the fault-free run."""
    assert wait_for_state(redis_url, job, {"done"}, 240) == "done"
    assert_stored_and_identical(storage, job, reference)


def assert_stored_and_identical(storage: Storage, job: str, reference: Reference, **figures: object) -> None:
    """One object per content key of a finished job and nothing else, chapters sample-identical to the reference."""
    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    expected = {segment_path(plan.voice, s.key) for s in plan.segments}
    stored = {path for path in storage.list("segments")}
    chapters = chapter_audio(storage, job)
    identical = len(chapters) == len(reference.chapters) and all(
        np.array_equal(ours, theirs) for ours, theirs in zip(chapters, reference.chapters, strict=False)
    )
    lost, extra = len(expected - stored), len(stored - expected)
    record(segments=len(expected), lost=lost, extra=extra, identical=identical, **figures)
    assert stored == expected, {"missing": expected - stored, "extra": stored - expected}
    assert identical, "a chapter differs from the fault-free render"


def storage_for(env: dict[str, str]) -> Storage:
    return open_storage(env["VOXFARM_STORAGE_URL"], endpoint_url=env["VOXFARM_S3_ENDPOINT_URL"])


@pytest.fixture(scope="module")
def reference(redis_service: RedisService, s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The same book rendered with no fault, in its own bucket."""
    workdir = tmp_path_factory.mktemp("reference")
    redis_service.flush()
    env = {
        "VOXFARM_STORAGE_URL": f"s3://{s3_server.new_bucket()}/farm",
        "VOXFARM_S3_ENDPOINT_URL": s3_server.endpoint,
        "VOXFARM_REDIS_URL": redis_service.url,
        "VOXFARM_CACHE_DIR": str(workdir / "cache"),
    }
    farm = FarmProcesses(env, workdir)
    try:
        farm.worker("cpu:0")
        farm.worker("cpu:1")
        farm.control()
        job = submit(farm, write_fault_book(workdir))
        assert wait_for_state(redis_service.url, job, {"done"}, 240) == "done"
    finally:
        farm.stop_all()  # before any scenario starts: these workers write to the reference bucket
    storage = storage_for(env)
    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    return Reference(chapter_audio(storage, job), plan.segments_total)


@pytest.fixture
def private_redis() -> Iterator[LocalRedis]:
    """A Redis the test may stop and start (its data lost) without touching the shared one."""
    server = LocalRedis()
    server.start()
    yield server
    server.stop()
