"""Restart with backoff: what keeps worker processes alive.

One policy for every place that runs workers: `voxfarm pool` (spawned
children, one per card) and the embedded farm behind `voxfarm render`
(`python -m producer.cli worker` subprocesses). A process that exits is
started again after a delay that doubles with each failure in a row, up to
a minute; one that ran for a while without dying starts the ladder over.
The supervisor only watches and restarts: what a caller does about an exit
(count it, requeue the messages the dead process held, give up) it does in
the ``on_exit`` and ``on_restart`` hooks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
HEALTHY_AFTER_S = 60.0
"""A process that ran this long without dying resets its backoff."""


class Process(Protocol):
    """What the supervisor needs of a started process (``subprocess.Popen`` has it as is)."""

    @property
    def pid(self) -> int | None: ...

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""


@dataclass
class Supervised:
    """One process slot: how to start it, and its history of exits."""

    name: str
    launch: Callable[[], Process]
    process: Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    next_start: float = 0.0
    last_exit: int | None = None

    def start(self) -> None:
        self.process = self.launch()
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Supervisor:
    """Starts every slot and, on each ``supervise()`` call, restarts the ones that died."""

    children: list[Supervised]
    on_exit: Callable[[Supervised, int | None, float], None] | None = None
    """Called with the slot, its exit code and the delay before its restart."""
    on_restart: Callable[[Supervised], None] | None = None
    backoff_s: tuple[float, ...] = RESTART_BACKOFF_S
    healthy_after_s: float = HEALTHY_AFTER_S

    def start(self) -> None:
        for child in self.children:
            child.start()

    @property
    def restarts(self) -> int:
        return sum(child.restarts for child in self.children)

    def supervise(self) -> int:
        """Note the processes that exited, start the ones whose backoff is over; the number alive."""
        now = time.monotonic()
        alive = 0
        for child in self.children:
            process = child.process
            code = process.poll() if process is not None else None
            if process is not None and code is None:
                alive += 1
                if now - child.started_at > self.healthy_after_s:
                    child.failures_in_a_row = 0
                continue
            if process is not None:
                child.process = None
                child.last_exit = code
                delay = self.backoff_s[min(child.failures_in_a_row, len(self.backoff_s) - 1)]
                child.failures_in_a_row += 1
                child.next_start = now + delay
                log.warning("%s exited with code %s; restarting in %.0fs", child.name, code, delay)
                if self.on_exit is not None:
                    self.on_exit(child, code, delay)
            if now >= child.next_start:
                child.restarts += 1
                if self.on_restart is not None:
                    self.on_restart(child)
                child.start()
        return alive
