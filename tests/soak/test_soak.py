"""Soak: a worker through 2,000 batches with bounded memory; the producer enqueueing 20,000 segments.

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

from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from producer.submit import submit_plan
from shared.buckets import BucketPolicy
from shared.celery_app import create_app
from shared.ledger import Ledger
from shared.redis_keys import SCHED_LEASE
from shared.settings import load_settings
from shared.voices import bundled_voice
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.services import free_port_pair

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1800)]

WORDS = [
    "amber",
    "bright",
    "cedar",
    "dawn",
    "ember",
    "frost",
    "grove",
    "harbor",
    "island",
    "jade",
    "kestrel",
    "lantern",
    "meadow",
    "north",
    "orchard",
    "pebble",
    "quiet",
    "river",
    "stone",
    "thistle",
]


def utterances(path: Path, count: int) -> Path:
    """``count`` short, distinct utterances as a JSONL file."""
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            a, b, c = WORDS[i % 20], WORDS[(i // 20) % 20], WORDS[(i // 400) % 20]
            handle.write(json.dumps({"id": f"u{i}", "text": f"{a.title()} {b} {c}, number {i}."}) + "\n")
    return path


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
    plan = _plan(utterances(tmp_path / "soak.jsonl", 2000))
    client = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    ledger = Ledger(client)
    from shared.storage import open_storage

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


def test_the_producer_registers_20000_segments_and_the_dispatcher_admits_them(
    farm_env: dict[str, str], tmp_path: Path
) -> None:
    book = utterances(tmp_path / "big.jsonl", 20_000)
    started = time.perf_counter()
    plan = _plan(book)
    planned = time.perf_counter()
    client = redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])
    from shared.storage import open_storage

    storage = open_storage(farm_env["VOXFARM_STORAGE_URL"], endpoint_url=farm_env["VOXFARM_S3_ENDPOINT_URL"])
    from producer.dispatcher import Dispatcher

    settings = load_settings(redis_url=farm_env["VOXFARM_REDIS_URL"])
    app = create_app(settings)
    ledger = Ledger(client)
    result = submit_plan(plan, storage=storage, ledger=ledger, app=app)
    submitted = time.perf_counter()

    def queued() -> int:
        return sum(int(client.llen(q)) for q in client.scan_iter(match="voxfarm.piper-onnx.*", _type="list"))

    assert result.enqueued == 20_000 and queued() == 0, "submit put segments in the broker"
    # No worker is known: the default window per bucket queue bounds what the broker holds.
    windowed = Dispatcher(storage=storage, ledger=ledger, app=app, settings=settings).cycle()
    buckets = len({s.bucket for s in plan.segments})
    assert windowed.dispatched == queued() <= settings.dispatch_window * buckets
    windowed_memory = int(client.info("memory")["used_memory"])
    # Admission speed: a window as large as the book, one cycle.
    big = settings.model_copy(update={"dispatch_window": 20_000})
    admitting = Dispatcher(storage=storage, ledger=ledger, app=app, settings=big, holder="admission-bench")
    client.delete(SCHED_LEASE)
    admit_started = time.perf_counter()
    admitted = admitting.cycle()
    admit_seconds = time.perf_counter() - admit_started
    assert admitted.dispatched == 20_000 - windowed.dispatched and queued() == 20_000
    report(
        "producer",
        {
            "segments": 20_000,
            "plan_seconds": round(planned - started, 1),
            "plan_segments_per_s": round(20_000 / (planned - started)),
            "submit_seconds": round(submitted - planned, 2),
            "admit_segments_per_s": round(admitted.dispatched / admit_seconds),
            "redis_used_memory_windowed_mb": round(windowed_memory / 2**20, 1),
            "redis_used_memory_whole_book_mb": round(int(client.info("memory")["used_memory"]) / 2**20, 1),
        },
    )
