"""Resume and the reconciler rebuild a job from storage after its Redis data is lost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis

from shared.keys import manifest_path, plan_path, segment_path
from shared.ledger import Ledger
from shared.schema import JobPlan
from shared.storage import open_storage
from tests.support.books import write_book
from tests.support.processes import FarmProcesses, wait_for_state

FAST_RECONCILE = {"VOXFARM_RECONCILE_INTERVAL_S": "1", "VOXFARM_RECONCILE_STALL_S": "3"}


def _wait_done_at_least(ledger: Ledger, job: str, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while ledger.status(job).done < count:
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


def test_the_reconciler_finishes_a_job_whose_redis_data_was_wiped_mid_render(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    farm.worker("cpu:0")
    farm.control(extra_env=FAST_RECONCILE)
    result = farm.cli("submit", str(write_book(tmp_path)), "--json")
    job = json.loads(result.stdout)["job"]
    client = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    _wait_done_at_least(Ledger(client), job, 2)

    client.flushdb()  # queues, unacked messages and the ledger are gone

    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done"}, 240) == "done"
    storage = open_storage(farm_env["VOXFARM_STORAGE_URL"], endpoint_url=farm_env["VOXFARM_S3_ENDPOINT_URL"])
    plan = JobPlan.model_validate_json(storage.get_bytes(plan_path(job)))
    assert all(storage.exists(segment_path(plan.voice, s.key)) for s in plan.segments)
    manifest = json.loads(storage.get_bytes(manifest_path(job)))
    assert manifest["segments_total"] == plan.segments_total and manifest["segments_reused"] == 0
    assert Ledger(client).status(job).meta.get("rebuilt") == "1"


def test_resume_re_enqueues_only_what_is_missing(farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path) -> None:
    worker = farm.worker("cpu:0")
    control = farm.control()  # dispatches the job
    result = farm.cli("submit", str(write_book(tmp_path)), "--json")
    job = json.loads(result.stdout)["job"]
    client = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    ledger = Ledger(client)
    _wait_done_at_least(ledger, job, 2)
    worker.stop()
    control.stop()
    client.flushdb()
    stored_before = ledger.redis.dbsize()
    assert stored_before == 0

    resumed = farm.cli("resume", job, "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["rebuilt"] is True
    assert summary["stored"] >= 2
    assert summary["enqueued"] >= 1 and summary["stored"] + summary["enqueued"] <= summary["total"]

    farm.worker("cpu:0")
    farm.control()
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done"}, 240) == "done"

    again = json.loads(farm.cli("resume", job, "--json").stdout)
    assert again["enqueued"] == 0 and again["stored"] == again["total"]
