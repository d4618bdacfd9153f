"""One thread that notices an engine call running past its time limit.

A ``threading.Timer`` per call starts and ends an operating-system thread
for every batch; with a fast card that is hundreds a second, a visible part
of the worker's own cost. One long-lived thread watches whichever call is
running instead: arming it is a lock and, when it is idle, a wake-up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Watchdog(Generic[T]):
    """Calls ``on_expiry(subject)`` on its own thread when an armed call is still running after ``limit_s``."""

    def __init__(self, limit_s: float, on_expiry: Callable[[T], None], *, name: str = "voxfarm-watchdog") -> None:
        self.limit_s = limit_s
        self.on_expiry = on_expiry
        self._name = name
        self._condition = threading.Condition()
        self._armed: tuple[float, T] | None = None
        self._idle = False
        self._thread: threading.Thread | None = None

    def arm(self, subject: T) -> None:
        """Start the clock for one call (replacing any armed before)."""
        with self._condition:
            self._armed = (time.monotonic() + self.limit_s, subject)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name=self._name, daemon=True)
                self._thread.start()
            elif self._idle:
                self._condition.notify()

    def disarm(self) -> None:
        """The call returned in time."""
        with self._condition:
            self._armed = None

    def _watch(self) -> None:
        while True:
            with self._condition:
                armed = self._armed
                if armed is None:
                    self._idle = True
                    self._condition.wait()
                    self._idle = False
                    continue
                deadline, subject = armed
                left = deadline - time.monotonic()
                if left > 0:
                    # A later arm only moves the deadline later: waking at this one and looking again is enough.
                    self._condition.wait(left)
                    continue
                self._armed = None
            self.on_expiry(subject)
