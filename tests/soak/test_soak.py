"""Soak: a worker through 2,000 batches with bounded memory; 20,000 segments admitted within the window.

Run separately (about 5 minutes): ``.venv/bin/python -m pytest tests/soak -m soak -s``.
Figures are printed and, with VOXFARM_SOAK_REPORT=path, written as JSON.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from producer.bench.admission import synthetic_utterances
from producer.dispatcher import Dispatcher
from producer.embedded import LocalRedis
from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from producer.submit import submit_plan
from shared.buckets import BucketPolicy
from shared.celery_app import create_app
from shared.ledger import Ledger
from shared.redis_keys import SCHED_LEASE
from shared.settings import load_settings
from shared.storage import open_storage
from shared.voices import bundled_voice
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.services import free_port_pair

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def batches_run(port: int) -> int:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return int(
        sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("voxfarm_batches_total{"))
    )


def report(name: str, figures: dict[str, Any]) -> None:
    print(f"\n{name}: {json.dumps(figures)}")
    target = os.environ.get("VOXFARM_SOAK_REPORT")
    if target:
        path = Path(target)
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing[name] = figures
        path.write_text(json.dumps(existing, indent=2))


def _plan(book: Path) -> Any:
    settings = load_settings()
    voice = bundled_voice()
    return plan_book(
        load_book(book, max_bytes=settings.max_source_bytes),
        PlanOptions("piper-onnx", voice, default_params(voice), BucketPolicy.from_edges(settings.bucket_edges)),
    )


def test_a_worker_runs_2000_batches_with_bounded_memory(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port_pair()
    worker = farm.worker("cpu:0", extra_args=["--metrics-port", str(port)])
    farm.control()
    started = time.perf_counter()
    plan = _plan(synthetic_utterances(tmp_path / "soak.jsonl", 2000))
    client = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    ledger = Ledger(client)
    storage = open_storage(farm_env["VOXFARM_STORAGE_URL"], endpoint_url=farm_env["VOXFARM_S3_ENDPOINT_URL"])
    result = submit_plan(
        plan, storage=storage, ledger=ledger, app=create_app(load_settings(redis_url=farm_env["VOXFARM_REDIS_URL"]))
    )
    assert result.enqueued == 2000

    samples: list[tuple[int, int]] = []
    deadline = time.monotonic() + 1500
    while ledger.status(plan.job).done < 2000:
        assert time.monotonic() < deadline and worker.alive(), worker.log()[-2000:]
        samples.append((ledger.status(plan.job).done, resident_bytes(worker.pid)))
        time.sleep(2)
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], plan.job, {"assembling", "done"}, 60)
    warm = next(rss for done, rss in samples if done >= 200)
    peak = max(rss for _done, rss in samples)
    final = resident_bytes(worker.pid)
    batches = batches_run(port)
    figures = {
        "segments": 2000,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_after_200_mb": round(warm / 2**20, 1),
        "rss_peak_mb": round(peak / 2**20, 1),
        "rss_final_mb": round(final / 2**20, 1),
        "growth_after_warmup_mb": round((final - warm) / 2**20, 1),
        "batches": batches,
    }
    report("worker_soak", figures)
    assert batches >= 2000
    assert final - warm < 64 * 2**20, f"resident memory grew by {(final - warm) / 2**20:.0f} MB over the soak"


def test_the_producer_registers_20000_segments_and_the_dispatcher_admits_them_within_the_window(
    farm_env: dict[str, str], tmp_path: Path
) -> None:
    """Counts and memory, not speed: ``voxfarm bench --admission`` prints the figures."""
    plan = _plan(synthetic_utterances(tmp_path / "big.jsonl", 20_000))
    server = LocalRedis()  # private: used_memory is the whole server's, and the shared one has other tenants
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        storage = open_storage(farm_env["VOXFARM_STORAGE_URL"], endpoint_url=farm_env["VOXFARM_S3_ENDPOINT_URL"])
        settings = load_settings(redis_url=server.url)
        app = create_app(settings)
        ledger = Ledger(client)

        def queued() -> int:
            return sum(int(client.llen(q)) for q in client.scan_iter(match="voxfarm.piper-onnx.*", _type="list"))

        result = submit_plan(plan, storage=storage, ledger=ledger, app=app)
        assert result.enqueued == 20_000 and queued() == 0, "submit put segments in the broker"
        # No worker is known: the default window per bucket queue bounds what the broker holds.
        windowed = Dispatcher(storage=storage, ledger=ledger, app=app, settings=settings).cycle()
        buckets = len({s.bucket for s in plan.segments})
        assert windowed.dispatched == queued() <= settings.dispatch_window * buckets
        windowed_memory = int(client.info("memory")["used_memory"])

        # A window as large as the book: everything in one cycle (pushed in chunks), once each.
        big = settings.model_copy(update={"dispatch_window": 20_000})
        client.delete(SCHED_LEASE)
        admitted = Dispatcher(storage=storage, ledger=ledger, app=app, settings=big, holder="whole-book").cycle()
        assert admitted.dispatched == 20_000 - windowed.dispatched and queued() == 20_000
        assert len(ledger.sent_times(plan.job)) == 20_000
        whole_memory = int(client.info("memory")["used_memory"])
        report(
            "producer",
            {
                "redis_windowed_mb": round(windowed_memory / 2**20, 1),
                "redis_whole_book_mb": round(whole_memory / 2**20, 1),
            },
        )
        assert windowed_memory * 5 < whole_memory, "Redis holds about as much with a window as with the whole book"
    finally:
        server.stop()
