"""A book planned by the control plane (``producer/deferred.py``), with the faults and operations it must survive.

``VOXFARM_PLAN_INLINE_CHARS=0`` makes `voxfarm submit` leave every book to
the control plane, as it does a large one. After any fault the chapters must
be sample-identical to the fault-free reference, which was planned at submit.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from producer.embedded import LocalRedis
from shared.ledger import Ledger
from tests.faults.conftest import (
    FAST,
    QUIET,
    Reference,
    assert_complete_and_identical,
    storage_for,
    write_fault_book,
)
from tests.faults.test_scheduler_faults import operations
from tests.support.logs import stored_keys
from tests.support.processes import FarmProcesses, wait_for_state

pytestmark = pytest.mark.timeout(420)

PLANNED = {**FAST, "VOXFARM_PLAN_INLINE_CHARS": "0"}


def _submit_request(farm: FarmProcesses, book: Path, *extra: str, env: dict[str, str]) -> str:
    result = farm.cli("submit", str(book), "--json", *QUIET, *extra, extra_env=env)
    assert result.returncode == 0, result.stderr
    submitted = json.loads(result.stdout)
    assert submitted["planning"] is True, submitted
    return str(submitted["job"])


def _wait_planned(ledger: Ledger, job: str, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while (total := ledger.status(job).total) == 0:
        assert time.monotonic() < deadline, f"{job} was never planned ({ledger.status(job).state})"
        time.sleep(0.1)
    return total


def test_a_book_planned_by_the_control_plane_renders_identical_to_one_planned_at_submit(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    farm.worker("cpu:0", extra_env=PLANNED)
    farm.worker("cpu:1", extra_env=PLANNED)
    farm.control(extra_env=PLANNED)

    job = _submit_request(farm, write_fault_book(tmp_path), env=PLANNED)

    assert_complete_and_identical(storage_for(farm_env), farm_env["VOXFARM_REDIS_URL"], job, reference)


def test_redis_restarted_empty_before_the_control_plane_planned_the_request(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, private_redis: LocalRedis, tmp_path: Path
) -> None:
    env = {**PLANNED, "VOXFARM_REDIS_URL": private_redis.url}
    job = _submit_request(farm, write_fault_book(tmp_path), env=env)  # no control running: nobody plans it yet

    private_redis.stop()  # the ledger and the plan task are gone; the request is in storage
    private_redis.start()
    farm.worker("cpu:0", extra_env=env)
    farm.control(extra_env=env)

    assert_complete_and_identical(storage_for(farm_env), private_redis.url, job, reference)
    assert Ledger(redis.Redis.from_url(private_redis.url)).status(job).meta.get("rebuilt") == "1"


def test_pause_and_cancel_while_planning_hold_once_planned(
    farm: FarmProcesses, farm_env: dict[str, str], reference: Reference, tmp_path: Path
) -> None:
    url = farm_env["VOXFARM_REDIS_URL"]
    ledger = Ledger(redis.Redis.from_url(url))
    ops = operations(farm_env)
    book = write_fault_book(tmp_path)
    paused = _submit_request(farm, book, "--job", "drill-paused", env=PLANNED)
    cancelled = _submit_request(farm, book, "--job", "drill-cancelled", env=PLANNED)
    assert ops.pause(paused).state == "paused"
    assert ops.cancel(cancelled).state == "cancelled"

    workers = [farm.worker("cpu:0", extra_env=PLANNED)]
    farm.control(extra_env=PLANNED)
    total = _wait_planned(ledger, paused)
    time.sleep(5)  # a window in which neither job may render anything

    assert ledger.status(paused).state == "paused" and total == reference.segments
    assert ledger.status(cancelled).state == "cancelled" and ledger.status(cancelled).total == 0
    assert stored_keys(w.log() for w in workers) == []
    assert list(storage_for(farm_env).list("segments")) == []

    resumed = farm.cli("resume", paused, extra_env=PLANNED)
    assert resumed.returncode == 0, resumed.stderr
    assert_complete_and_identical(storage_for(farm_env), url, paused, reference)
    assert wait_for_state(url, cancelled, {"cancelled"}, 1) == "cancelled"
