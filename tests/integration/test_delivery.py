"""Delivery guarantees through real Redis and real worker processes.

Batches never mix buckets, nothing is acknowledged before its audio is
stored, and a killed worker's messages are redelivered and rendered once.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import redis

from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from producer.submit import enqueue_segments, group_by_key
from shared.buckets import BucketPolicy
from shared.celery_app import create_app
from shared.keys import plan_path, segment_path
from shared.ledger import Ledger
from shared.schema import JobPlan
from shared.settings import load_settings
from shared.storage import open_storage
from shared.voices import bundled_voice
from tests.support.books import write_book
from tests.support.logs import JSON_LOGS, batches, stored_keys
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.services import SeaweedS3

VARIED = """# Varied

## One

Yes. No. Perhaps it was a very long and winding sentence that went on and on, past the hills and the rivers,
until nobody could remember where it had begun. Stop! Then the rain came down over the whole valley, and the
people of the town ran for their doors. Why? Because it was cold. The children laughed. It was a strange and
wonderful evening, full of noises and lights and the smell of wet earth, that none of them would forget.

## Two

Go. Wait here until I come back with the lantern and the rope from the shed behind the old barn. Fine.
Everything that had happened that night seemed to belong to another world, a world of stories and songs.
"""

#: Every batch logged, fixed batch sizes, a generous wait so batches fill, and no folding.
BATCH_LOGS = {
    **JSON_LOGS,
    "VOXFARM_LOG_LEVEL": "DEBUG",
    "VOXFARM_MAX_WAIT_MS": "400",
    "VOXFARM_FOLD_FRACTION": "0",
    "VOXFARM_BATCH_TUNING": "off",
}


def _plan(path: Path) -> JobPlan:
    settings = load_settings()
    voice = bundled_voice()
    options = PlanOptions("piper-onnx", voice, default_params(voice), BucketPolicy.from_edges(settings.bucket_edges))
    return plan_book(load_book(path), options)


def test_every_batch_holds_items_of_one_bucket_only(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    worker = farm.worker(
        "cpu:0",
        extra_env={**BATCH_LOGS, "VOXFARM_MAX_BATCH_ITEMS": "4"},
        extra_args=["--concurrency", "16"],
    )
    farm.control()
    result = farm.cli("submit", str(write_book(tmp_path, VARIED, "varied.md")), "--json")
    job = json.loads(result.stdout)["job"]
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"assembling", "done"}, 240) in {"assembling", "done"}

    formed = batches(worker.log())
    assert formed, "the worker logged no batches"
    assert any(batch["size"] > 1 for batch in formed), "no batch held more than one item"
    for batch in formed:
        assert set(batch["buckets"]) == {batch["edge"]}, batch
    plan_buckets = {s.bucket for s in _plan(tmp_path / "varied.md").segments}
    assert len(plan_buckets) >= 3, "the book should spread over several buckets"


def test_no_message_is_acknowledged_before_its_audio_is_stored(
    farm: FarmProcesses, farm_env: dict[str, str], s3_server: SeaweedS3, tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    plan = _plan(write_book(tmp_path, name="book.md"))
    broker = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    ledger = Ledger(broker)
    groups = list(group_by_key(plan.segments).values())
    ledger.create_job(plan.job, total=plan.segments_total, reused=[], meta={"title": plan.title})
    storage = open_storage(farm_env["VOXFARM_STORAGE_URL"], endpoint_url=s3_server.endpoint)
    storage.put_bytes(plan_path(plan.job), plan.model_dump_json().encode())

    s3_server.pause()
    try:
        enqueue_segments(
            plan, groups, app=create_app(load_settings(redis_url=farm_env["VOXFARM_REDIS_URL"])), ledger=ledger
        )
        deadline = time.monotonic() + 30
        while broker.hlen("unacked") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # the worker has had time to synthesise; its uploads are stuck
        held = broker.hlen("unacked")
        assert held >= 1, "the worker took no message"
        assert ledger.status(plan.job).done == 0
    finally:
        s3_server.resume()
    assert not any(storage.exists(segment_path(plan.voice, s.key)) for s in plan.segments[:0])
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], plan.job, {"assembling"}, 240) == "assembling"
    deadline = time.monotonic() + 10
    while broker.hlen("unacked") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert broker.hlen("unacked") == 0
    assert all(storage.exists(segment_path(plan.voice, s.key)) for s in plan.segments)


def test_a_killed_workers_messages_are_redelivered_and_rendered_once(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    quick = {**JSON_LOGS, "VOXFARM_VISIBILITY_TIMEOUT_S": "5"}
    first = farm.worker("cpu:0", extra_env=quick, name="first")
    farm.control(extra_env=quick)
    result = farm.cli("submit", str(write_book(tmp_path, VARIED, "varied.md")), "--json", extra_env=quick)
    job = json.loads(result.stdout)["job"]
    ledger = Ledger(redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"]))
    total = ledger.status(job).total
    deadline = time.monotonic() + 120
    while ledger.status(job).done < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.signal(signal.SIGKILL)
    first.process.wait(10)
    done_at_kill = ledger.status(job).done
    assert done_at_kill < total, "the first worker finished before it could be killed"

    time.sleep(6)  # past the visibility timeout: the next worker restores what the first held
    second = farm.worker("cpu:0", extra_env=quick, name="second")
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done"}, 240) == "done"

    plan = JobPlan.model_validate_json(
        open_storage(farm_env["VOXFARM_STORAGE_URL"], endpoint_url=farm_env["VOXFARM_S3_ENDPOINT_URL"]).get_bytes(
            plan_path(job)
        )
    )
    rendered = Counter(stored_keys([first.log(), second.log()]))
    assert set(rendered) == {s.key for s in plan.segments}
    assert max(rendered.values()) == 1, [k for k, n in rendered.items() if n > 1]
    assert ledger.status(job).done == total


def test_a_torch_worker_decodes_larger_calls_in_frame_sorted_batches(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    edges = {"VOXFARM_BUCKET_EDGES": "[32, 64, 128]"}
    worker = farm.worker(
        "cpu:0",
        extra_env={**BATCH_LOGS, **edges, "VOXFARM_MAX_BATCH_ITEMS": "2", "VOXFARM_FRAME_SORT_BATCHES": "3"},
        extra_args=["--engine", "piper-torch", "--concurrency", "16"],
    )
    book = write_book(tmp_path, VARIED, "varied.md")
    farm.control(extra_env=edges)
    result = farm.cli("submit", str(book), "--engine", "piper-torch", "--json", extra_env=edges)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)["job"]
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"assembling", "done"}, 300) in {"assembling", "done"}

    assert "decoded in frame-sorted batches of {32: 2, 64: 2, 128: 2}" in worker.log()
    formed = batches(worker.log())
    assert any(batch["size"] > 2 for batch in formed), "no call held more than one decode batch"
    assert max(batch["size"] for batch in formed) <= 6
    for batch in formed:
        assert set(batch["buckets"]) == {batch["edge"]}, batch
        assert batch["padded_frames"] >= batch["useful_frames"] > 0
