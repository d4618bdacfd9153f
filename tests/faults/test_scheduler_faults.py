"""Faults of the control plane's dispatcher, and pause, resume and cancel on a real render.

Same rules as the rest of the fault suite: the book renders with the noise
off, so after any fault its chapters must be sample-identical to the
fault-free reference, with one object per content key in storage.
"""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from producer.embedded import LocalRedis
from producer.fenced_push import PUSH_SCRIPT
from producer.operations import Operations
from shared.keys import plan_path, segment_path
from shared.ledger import Ledger
from shared.redis_keys import SCHED_LEASE
from shared.schema import JobPlan
from shared.settings import load_settings
from tests.faults.conftest import (
    FAST,
    Reference,
    assert_complete_and_identical,
    storage_for,
    submit,
    wait_done_at_least,
    write_fault_book,
)
from tests.support.fault_report import record
from tests.support.logs import records, stored_keys
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(420)

LEASE = {**FAST, "VOXFARM_LEASE_TTL_S": "2"}
PARTITION = {**FAST, "VOXFARM_LEASE_TTL_S": "5"}
"""A longer lease than LEASE: on a loaded machine a 2 s lease can lapse before the holder's first push."""
PUSH_SHA = hashlib.sha1(PUSH_SCRIPT.encode()).hexdigest().encode()
"""What crosses the network when a replica runs the dispatcher's fenced push (EVALSHA <sha> ...)."""


def operations(env: dict[str, str]) -> Operations:
    """The operations API in this process: a CLI start-up would let a short book finish first."""
    settings = load_settings(
        redis_url=env["VOXFARM_REDIS_URL"],
        storage_url=env["VOXFARM_STORAGE_URL"],
        s3_endpoint_url=env["VOXFARM_S3_ENDPOINT_URL"],
    )
    return Operations.from_settings(settings)


def _text(value: bytes | None) -> str:
    return value.decode() if value else ""


def _wait_for(condition: Callable[[], bool], failure: str | Callable[[], str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, failure if isinstance(failure, str) else failure()
        time.sleep(0.1)


def _settled(ledger: Ledger, job: str, timeout_s: float = 120) -> int:
    """Wait until nothing of the job is in a worker's hands (every sent segment is done); its done count."""
    deadline = time.monotonic() + timeout_s
    while True:
        sent, done = set(ledger.sent_times(job)), ledger.done_indexes(job)
        if sent <= done:
            return len(done)
        assert time.monotonic() < deadline, f"{len(sent - done)} segments still in flight"
        time.sleep(0.2)


def test_the_dispatcher_killed_mid_cycle_loses_nothing(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    farm.worker("cpu:0", extra_env=LEASE)
    farm.worker("cpu:1", extra_env=LEASE)
    control = farm.control(extra_env=LEASE)
    job = submit(farm, write_fault_book(tmp_path), env=LEASE)
    wait_done_at_least(farm_env["VOXFARM_REDIS_URL"], job, 2)
    control.signal(signal.SIGKILL)  # its cycles run back to back: the kill lands in or between pushes
    control.process.wait(10)

    successor = farm.control(extra_env=LEASE)

    assert_complete_and_identical(storage_for(farm_env), farm_env["VOXFARM_REDIS_URL"], job, reference)
    assert "dispatcher lease taken" in successor.log()


def test_a_lease_holder_partitioned_away_is_fenced_out_and_its_late_push_refused(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    farm.worker("cpu:0", extra_env=PARTITION)
    farm.worker("cpu:1", extra_env=PARTITION)
    url = farm_env["VOXFARM_REDIS_URL"]
    address = urlsplit(url)
    proxy = TcpProxy((address.hostname or "127.0.0.1", address.port or 6379), marker=PUSH_SHA)
    try:
        # The first replica reaches Redis only through the proxy: the link a partition cuts.
        first = farm.control(
            extra_env={**PARTITION, "VOXFARM_REDIS_URL": address._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()}
        )
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 60
        while not client.get(SCHED_LEASE):
            assert time.monotonic() < deadline, "no replica took the dispatch lease"
            time.sleep(0.1)
        held = _text(client.get(SCHED_LEASE))
        assert f"dispatcher lease taken: {held}" in first.log()
        second = farm.control(extra_env=PARTITION)
        proxy.cut_on(PUSH_SHA)  # the partition starts as the holder sends the job's first push, which is held
        job = submit(farm, write_fault_book(tmp_path), env=PARTITION)
        _wait_for(lambda: proxy.is_cut, lambda: f"the holder never pushed; the lease: {client.get(SCHED_LEASE)!r}")
        _wait_for(lambda: _text(client.get(SCHED_LEASE)) not in ("", held), "the second replica never took the lease")
        taken = _text(client.get(SCHED_LEASE))
        wait_done_at_least(url, job, 1)  # the new holder dispatches and a segment lands while the old one is cut off
        pushes = proxy.crossings
        proxy.heal()  # the held push reaches Redis now, after the lease moved

        _wait_for(lambda: "dispatch fenced out" in first.log(), "the late push was not refused")
        assert_complete_and_identical(storage_for(farm_env), url, job, reference)
        assert int(taken.rsplit("|", 1)[1]) > int(held.rsplit("|", 1)[1]), "the fencing token did not move"
        assert f"dispatcher lease taken: {taken}" in second.log()
        assert proxy.crossings == pushes, "the fenced-out replica pushed again"
        record(old_token=held.rsplit("|", 1)[1], new_token=taken.rsplit("|", 1)[1], refused_pushes=1)
    finally:
        proxy.close()


def test_redis_restarted_empty_during_admission(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {**LEASE, "VOXFARM_REDIS_URL": private_redis.url}
    farm.worker("cpu:0", extra_env=env)
    farm.worker("cpu:1", extra_env=env)
    farm.control(extra_env=env)
    client = redis.Redis.from_url(private_redis.url)
    _wait_for(lambda: bool(client.get(SCHED_LEASE)), "the control service never took the dispatcher lease")
    job = submit(farm, write_fault_book(tmp_path), env=env)

    private_redis.stop()  # the job is registered, its first window barely dispatched
    time.sleep(2)
    private_redis.start()

    assert_complete_and_identical(storage_for(farm_env), private_redis.url, job, reference)


def test_a_paused_job_renders_nothing_until_resumed_then_completes_identical(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    workers = [farm.worker("cpu:0", extra_env=FAST)]
    farm.control(extra_env=FAST)
    url = farm_env["VOXFARM_REDIS_URL"]
    ledger = Ledger(redis.Redis.from_url(url))
    ops = operations(farm_env)
    job = submit(farm, write_fault_book(tmp_path), env=FAST)
    wait_done_at_least(url, job, 1)

    assert ops.pause(job).state == "paused"
    settled = _settled(ledger, job)
    rendered_when_settled = len(stored_keys(w.log() for w in workers))
    time.sleep(5)  # a window in which a paused job must not move

    assert ledger.status(job).state == "paused"
    assert ledger.status(job).done == settled < reference.segments
    assert len(stored_keys(w.log() for w in workers)) == rendered_when_settled
    handed = [r for w in workers for r in records(w.log()) if r.get("msg") == "segment of a paused job handed back"]

    resumed = farm.cli("resume", job, extra_env=FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert_complete_and_identical(storage_for(farm_env), url, job, reference)
    rendered = stored_keys(w.log() for w in workers)
    assert len(rendered) == len(set(rendered)) == reference.segments
    record(paused_at=settled, handed_back=len(handed))


def test_a_cancelled_job_synthesises_none_of_its_pending_segments(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    workers = [farm.worker("cpu:0", extra_env=FAST)]
    farm.control(extra_env=FAST)
    url = farm_env["VOXFARM_REDIS_URL"]
    client = redis.Redis.from_url(url)
    ledger = Ledger(client)
    ops = operations(farm_env)
    job = submit(farm, write_fault_book(tmp_path), env=FAST)
    wait_done_at_least(url, job, 1)

    assert ops.cancel(job).state == "cancelled"
    in_hand = set(ledger.sent_times(job)) | ledger.done_indexes(job)  # all a worker may still synthesise
    time.sleep(6)  # what was queued drains: acknowledged unrendered

    storage = storage_for(farm_env)
    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    calls = stored_keys(w.log() for w in workers)  # one engine call per rendered segment
    pending = {s.key for s in plan.segments if s.index not in in_hand}
    stored = {s.key for s in plan.segments if storage.exists(segment_path(plan.voice, s.key))}
    assert pending, "the job finished before it could be cancelled"
    assert not pending & set(calls), "a segment of the cancelled job was synthesised after the cancel"
    assert not pending & stored
    assert ledger.status(job).state == "cancelled"
    assert all(client.llen(q) == 0 for q in client.scan_iter(match="voxfarm.piper-onnx.*", _type="list"))
    jobs = farm.cli("jobs", extra_env=FAST)
    assert job in jobs.stdout and "cancelled" in jobs.stdout
    again = farm.cli("pause", job, extra_env=FAST)
    assert again.returncode == 2 and "cancelled" in again.stderr
    record(segments=reference.segments, synthesised=len(calls), never_synthesised=len(pending))
    assert wait_for_state(url, job, {"cancelled"}, 1) == "cancelled"
