"""The supervisor of worker processes, driven with real short-lived processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from workers.supervisor import Supervised, Supervisor


def python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def supervise_until(supervisor: Supervisor, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the supervisor never got there"
        supervisor.supervise()
        time.sleep(0.02)


def test_a_process_that_exits_is_restarted_and_its_failures_in_a_row_counted() -> None:
    exits: list[tuple[str, int | None, float]] = []
    crashing = Supervised("crashing", lambda: python("raise SystemExit(3)"))
    steady = Supervised("steady", lambda: python("import time; time.sleep(60)"))
    supervisor = Supervisor(
        [crashing, steady], on_exit=lambda slot, code, delay: exits.append((slot.name, code, delay)), backoff_s=(0.0,)
    )
    supervisor.start()
    first_steady = steady.process
    try:
        supervise_until(supervisor, lambda: crashing.restarts >= 2)

        assert exits[:2] == [("crashing", 3, 0.0), ("crashing", 3, 0.0)]
        assert crashing.failures_in_a_row >= 2 and crashing.last_exit == 3
        assert steady.process is first_steady and steady.restarts == 0 and steady.alive()
        assert supervisor.restarts == crashing.restarts
    finally:
        for slot in (crashing, steady):
            if isinstance(slot.process, subprocess.Popen):
                slot.process.kill()
                slot.process.wait()


def test_the_restart_waits_out_the_backoff_of_its_failures_in_a_row() -> None:
    restarted: list[str] = []
    slot = Supervised("crashing", lambda: python("raise SystemExit(1)"))
    supervisor = Supervisor([slot], on_restart=lambda s: restarted.append(s.name), backoff_s=(0.0, 3600.0))
    supervisor.start()
    supervise_until(supervisor, lambda: slot.failures_in_a_row == 2)

    for _ in range(5):
        supervisor.supervise()

    assert restarted == ["crashing"], "restarted again before its backoff was over"
    assert slot.process is None and slot.next_start > time.monotonic() + 3000
