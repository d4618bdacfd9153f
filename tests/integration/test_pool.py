"""`voxfarm pool` with real worker processes: one per card, restarted when killed, drained on SIGTERM."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.processes import FarmProcesses
from tests.support.services import free_port_pair


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return str(response.read().decode())


def wait_until(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def spawned_children(parent: int) -> list[int]:
    """PIDs of the worker processes a pool spawned (multiprocessing's spawn_main)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def test_pool_runs_one_worker_per_device_restarts_a_killed_one_and_drains_on_sigterm(
    farm: FarmProcesses, tmp_path: Path
) -> None:
    health = free_port_pair()
    metrics = free_port_pair()
    pool = farm.start(
        "pool",
        [
            "pool",
            "--devices",
            "cpu:2",
            "--health-port",
            str(health),
            "--metrics-port",
            str(metrics),
            "--ready-dir",
            str(tmp_path / "ready"),
        ],
    )
    base = f"http://127.0.0.1:{health}"
    wait_until(lambda: http_status(f"{base}/readyz") == 200, 120, "the pool to be ready")

    children = spawned_children(pool.pid)
    assert len(children) == 2
    # Each worker serves its own metrics port, with a distinct card label.
    for offset in range(2):
        text = http_text(f"http://127.0.0.1:{metrics + offset}/metrics")
        assert f'card="{offset}"' in text and "voxfarm_worker_ready" in text

    os.kill(children[0], signal.SIGKILL)
    wait_until(
        lambda: children[0] not in spawned_children(pool.pid) and len(spawned_children(pool.pid)) == 2,
        60,
        "the killed worker to be replaced",
    )
    wait_until(lambda: http_status(f"{base}/readyz") == 200, 120, "the restarted worker to be ready")
    assert 'voxfarm_pool_restarts_total{device="cpu"} 1.0' in http_text(f"{base}/metrics")

    survivors = spawned_children(pool.pid)
    pool.signal(signal.SIGTERM)
    pool.process.wait(60)
    assert pool.process.returncode == 0, pool.log()[-2000:]
    for pid in survivors:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
