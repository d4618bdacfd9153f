"""`voxfarm bench --engine-standin`: the farm's own cost per segment, with an engine that costs nothing.

A whole book goes through the embedded farm (a private Redis, local
storage in a throw-away folder, real worker and control processes) with
workers running the stand-in engine (``workers/engines/standin.py``), which
answers at once with real speech of the right length. What the wall clock
and the CPU clocks show is then the farm itself: how many segments per
second it moves, and how many milliseconds of CPU each segment costs, per
part in the workers (from their ``workers.costs`` reports) and per process
across the farm (workers, control, Redis, and this process submitting and
watching). Planning (phonemes) happens before the clock starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producer.bench.e2e import temporary_dir
from producer.embedded import LocalFarm, local_farm, worker_count
from producer.ingest import load_book
from producer.planner import PlanOptions, default_params, plan_book
from producer.submit import submit_plan
from shared.audio import flac_encoder
from shared.buckets import BucketPolicy
from shared.celery_app import create_app
from shared.errors import BadInputError, FatalError
from shared.keys import segment_path
from shared.ledger import Ledger
from shared.schema import JobPlan
from shared.settings import load_settings
from shared.storage import open_storage
from shared.voices import bundled_voice
from workers.runtime import MAX_UNIT_SEGMENTS

STANDIN_ENGINE = "bench-standin"
MAX_UPLOAD_PROCESSES = 64
DEFAULT_UNIT_SEGMENTS = 32
"""Segments per message: what the farm's own cost per segment was measured lowest with (docs/throughput.md)."""
DEFAULT_BOOK = Path(__file__).resolve().parents[2] / "tests" / "corpus" / "mary-shelley_frankenstein.epub"
"""A whole novel shipped with the repository (the bundled sample is too short to measure)."""
WORKER_PARTS = ("message", "ledger", "storage", "quality", "encoding", "acknowledgement", "engine", "other")
BOOKKEEPING = ("message", "ledger", "storage", "acknowledgement", "other")
"""What the farm spends per segment besides checking and encoding audio (and the engine itself)."""


@dataclass(frozen=True)
class StandInOptions:
    book: Path = DEFAULT_BOOK
    workers: int | None = None
    unit_segments: int = DEFAULT_UNIT_SEGMENTS
    """Segments per message."""
    upload_processes: int = 0
    """Processes per worker that check, encode and store takes (0: the worker's own threads)."""
    timeout_s: float = 1800.0


def run_standin_bench(options: StandInOptions) -> dict[str, Any]:
    if not options.book.is_file():
        raise BadInputError(f"no book at {options.book}; pass one with --book")
    if not 1 <= options.unit_segments <= MAX_UNIT_SEGMENTS:
        raise BadInputError(f"--unit-segments must be 1 to {MAX_UNIT_SEGMENTS}, not {options.unit_segments}")
    if not 0 <= options.upload_processes <= MAX_UPLOAD_PROCESSES:
        raise BadInputError(f"--upload-processes must be 0 to {MAX_UPLOAD_PROCESSES}, not {options.upload_processes}")
    settings = load_settings()
    voice = bundled_voice()
    plan = plan_book(
        load_book(options.book),
        PlanOptions(
            STANDIN_ENGINE, voice, default_params(voice), BucketPolicy.from_edges(settings.bucket_edges), bench=True
        ),
    )
    with temporary_dir() as work:
        store, costs = work / "storage", work / "costs"
        env = {
            "VOXFARM_STORAGE_URL": store.as_uri(),
            "VOXFARM_COST_REPORT_DIR": str(costs),
            "VOXFARM_BATCH_TUNING": "off",  # the stand-in batches for free: let the batcher fill calls
            "VOXFARM_BOOK_FORMAT": "none",
            "XDG_CACHE_HOME": str(work / "cache"),
            "VOXFARM_DISPATCH_UNIT_SEGMENTS": str(options.unit_segments),
            "VOXFARM_UPLOAD_PROCESSES": str(options.upload_processes),
        }
        workers = options.workers or worker_count()
        with local_farm(workers=workers, engine=STANDIN_ENGINE, extra_env=env) as (redis_url, farm):
            farm.after_exit = _abandon_run
            run = _timed_run(
                plan, farm, redis_url=redis_url, store=store, costs=costs, workers=workers, timeout_s=options.timeout_s
            )
        storage = open_storage(store.as_uri())
        keys = {segment.key for segment in plan.segments}
        stored = sum(1 for key in keys if storage.exists(segment_path(plan.voice, key)))
    return {
        "book": options.book.name,
        "chapters": len(plan.chapters),
        "segments": plan.segments_total,
        "distinct_segments": len(keys),
        "stored": stored,
        "workers": workers,
        "unit_segments": options.unit_segments,
        "upload_processes": options.upload_processes,
        "flac_encoder": flac_encoder(),
        **run,
    }


def _timed_run(
    plan: JobPlan, farm: LocalFarm, *, redis_url: str, store: Path, costs: Path, workers: int, timeout_s: float
) -> dict[str, Any]:
    settings = load_settings(redis_url=redis_url, storage_url=store.as_uri())
    storage = open_storage(store.as_uri())
    ledger = Ledger.from_url(redis_url)
    app = create_app(settings)
    pids = _pids(farm)
    # Whatever earlier runs left the filesystem to do (removing their hundreds of megabytes of segments) is
    # done now, not inside this run's first flushes of the segments it stores.
    os.sync()
    before_reports = _reports(costs, workers, after=time.time())
    before_procs = {name: _proc_cpu(pid) for name, pid in pids.items()}
    before_redis = _redis_cpu(ledger)
    before_self = time.process_time()
    before_machine = _machine_cpu()
    started = time.perf_counter()
    submit_plan(plan, storage=storage, ledger=ledger, app=app, replace=True)
    submitted = time.perf_counter()
    deadline = started + timeout_s
    while (state := ledger.status(plan.job).state) not in ("assembling", "done", "failed"):
        if time.perf_counter() > deadline:
            raise FatalError(f"the stand-in run did not finish within {timeout_s:.0f}s (job {state})")
        farm.check_alive()
        time.sleep(0.05)  # the clock reads to 1% of a run that takes seconds; faster polls cost the farm CPU
    wall = time.perf_counter() - started
    # Read the clocks at once: assembly (which is not the farm's per-segment cost) starts now on the control.
    finished = time.time()
    after_procs = {name: _proc_cpu(pid) for name, pid in pids.items()}
    after_redis = _redis_cpu(ledger)
    after_self = time.process_time()
    after_machine = _machine_cpu()
    after_reports = _reports(costs, workers, after=finished)
    if state == "failed":
        raise FatalError(f"the stand-in job failed: {ledger.status(plan.job).meta.get('error', '')}")
    distinct = len({segment.key for segment in plan.segments})
    parts = _worker_parts(before_reports, after_reports)
    offloaded = sum(r["parts"]["offloaded"] for r in after_reports) - sum(
        r["parts"]["offloaded"] for r in before_reports
    )
    per = 1000.0 / distinct
    procs = {name: after_procs[name] - before_procs[name] for name in pids}
    farm_cpu = {
        "workers": sum(v for k, v in procs.items() if k.startswith("worker-")) + offloaded,
        "control": procs.get("control", 0.0),
        "redis": after_redis - before_redis,
        "submit_and_watch": after_self - before_self,
    }
    farm_cpu["total"] = sum(farm_cpu.values())
    # The whole machine's busy CPU, the kernel's own threads included: the flusher threads that write back
    # what local storage flushes count here and in no process's figure (and so does anything else running).
    farm_cpu["machine"] = after_machine - before_machine
    worker_ms = {part: round(seconds * per, 4) for part, seconds in parts.items()}
    own = sum(v for k, v in procs.items() if k.startswith("worker-"))
    return {
        "wall_s": round(wall, 3),
        "submit_s": round(submitted - started, 3),
        "segments_per_s": round(distinct / wall, 1),
        "worker_segments": sum(r["segments"] for r in after_reports) - sum(r["segments"] for r in before_reports),
        "worker_cpu_ms_per_segment": worker_ms,
        "bookkeeping_ms_per_segment": round(sum(worker_ms[p] for p in BOOKKEEPING), 4),
        # The worker processes alone, their upload processes left out: what one interpreter must keep up with.
        "worker_process_ms_per_segment": round(own * per, 4),
        "farm_cpu_ms_per_segment": {name: round(seconds * per, 4) for name, seconds in farm_cpu.items()},
    }


def _worker_parts(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, float]:
    """CPU seconds per part over the run, summed over the workers; ``other`` is the process's rest."""

    def total(reports: list[dict[str, Any]], read: Any) -> float:
        return float(sum(read(r) for r in reports))

    def delta(read: Any) -> float:
        return total(after, read) - total(before, read)

    parts = {name: delta(lambda r, n=name: r["parts"][n]) for name in ("ledger", "storage", "quality", "encoding")}
    parts["message"] = delta(lambda r: r["parts"]["message"] + r["celery_consumer"])
    parts["acknowledgement"] = delta(lambda r: r["celery_tasks"] - r["parts"]["handler"])
    parts["engine"] = delta(lambda r: r["parts"]["engine"])
    # Upload processes (workers.offload) report their CPU with each take; it is part of the worker's.
    process = delta(lambda r: r["process"] + r["parts"]["offloaded"])
    parts["other"] = process - sum(parts.values())
    parts["total"] = process
    return {name: parts[name] for name in (*WORKER_PARTS, "total")}


def _reports(folder: Path, workers: int, *, after: float, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Every worker's cost report written after ``after`` (they are rewritten twice a second)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = []
        for path in sorted(folder.glob("*.json")):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        fresh = [r for r in found if r["at"] > after]
        if len(fresh) >= workers:
            return fresh
        time.sleep(0.1)
    raise FatalError(f"the workers wrote no cost reports into {folder}")


def _pids(farm: LocalFarm) -> dict[str, int]:
    return {
        slot.name: int(slot.process.pid)
        for slot in farm.supervisor.children
        if isinstance(slot.process, subprocess.Popen)
    }


def _proc_cpu(pid: int) -> float:
    """User plus system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine since boot (every state of /proc/stat but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _redis_cpu(ledger: Ledger) -> float:
    info: Mapping[str, Any] = ledger.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _abandon_run() -> None:
    raise FatalError("a local process died during the stand-in run; its figures would include the restart")


def format_standin(report: dict[str, Any]) -> str:
    worker = report["worker_cpu_ms_per_segment"]
    farm = report["farm_cpu_ms_per_segment"]
    lines = [
        f"stand-in engine: {report['book']}, {report['distinct_segments']} distinct segments "
        f"({report['segments']} in {report['chapters']} chapters), {report['workers']} workers, "
        f"{report['unit_segments']} segments per message, {report['upload_processes']} upload processes each, "
        f"FLAC by {report['flac_encoder']}",
        f"    wall {report['wall_s']:.2f}s (submit {report['submit_s']:.2f}s)   "
        f"{report['segments_per_s']:.1f} segments/s through the whole farm   stored {report['stored']}",
        "    worker CPU ms per segment:",
    ]
    lines += [f"        {part:<16} {worker[part]:>8.3f}" for part in (*WORKER_PARTS, "total")]
    bookkeeping = report["bookkeeping_ms_per_segment"]
    lines.append(f"        {'bookkeeping':<16} {bookkeeping:>8.3f}  ({' + '.join(BOOKKEEPING)})")
    own = report["worker_process_ms_per_segment"]
    lines.append(f"        {'worker process':<16} {own:>8.3f}  (the worker processes alone, upload processes left out)")
    lines.append("    farm CPU ms per segment:")
    lines += [f"        {name:<16} {value:>8.3f}" for name, value in farm.items()]
    return "\n".join(lines)
