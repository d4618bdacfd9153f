"""`voxfarm bench --engine-standin` on a small book: every segment stored and a complete, consistent report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bench import run_bench
from tests.support.books import write_book

WORKER_PARTS = ("message", "ledger", "storage", "quality", "encoding", "acknowledgement", "engine", "other")


@pytest.mark.parametrize("processes", [0, 1])
def test_standin_bench_stores_every_segment_and_accounts_for_the_cpu_by_part(tmp_path: Path, processes: int) -> None:
    book = write_book(tmp_path)
    result, report = run_bench(
        tmp_path / "standin.json",
        *("--engine-standin", "--book", str(book), "--workers", "2", "--unit-segments", "3"),
        *("--upload-processes", str(processes)),
    )

    distinct = report["distinct_segments"]
    assert distinct >= 5 and report["segments"] >= distinct
    assert report["stored"] == distinct
    assert report["worker_segments"] == distinct
    assert (report["workers"], report["unit_segments"], report["upload_processes"]) == (2, 3, processes)
    assert report["flac_encoder"] == "libFLAC without MD5"
    assert abs(report["segments_per_s"] * report["wall_s"] - distinct) <= 0.01 * distinct
    worker = report["worker_cpu_ms_per_segment"]
    assert set(worker) == {*WORKER_PARTS, "total"}
    measured = [worker[part] for part in WORKER_PARTS if part != "other"]
    assert all(value >= 0 for value in measured)
    assert worker["encoding"] > 0 and worker["quality"] > 0 and worker["message"] > 0 and worker["ledger"] > 0
    assert abs(sum(worker[part] for part in WORKER_PARTS) - worker["total"]) < 0.01
    assert sum(measured) <= worker["total"] + 0.01
    bookkeeping = ("message", "ledger", "storage", "acknowledgement", "other")
    assert abs(report["bookkeeping_ms_per_segment"] - sum(worker[p] for p in bookkeeping)) < 0.01
    own = report["worker_process_ms_per_segment"]
    assert 0 < own <= report["farm_cpu_ms_per_segment"]["workers"] + 0.01
    if not processes:  # without upload processes the worker process does every part itself
        assert abs(own - report["farm_cpu_ms_per_segment"]["workers"]) < 0.01
    farm = report["farm_cpu_ms_per_segment"]
    assert set(farm) == {"workers", "control", "redis", "submit_and_watch", "total", "machine"}
    assert abs(farm["total"] - sum(v for k, v in farm.items() if k not in {"total", "machine"})) < 0.01
    assert farm["workers"] > 0 and farm["redis"] > 0 and farm["machine"] > 0
    for line in (
        "segments/s through the whole farm",
        *WORKER_PARTS,
        "bookkeeping",
        "worker process",
        "redis",
        "machine",
    ):
        assert line in result.stdout, result.stdout
