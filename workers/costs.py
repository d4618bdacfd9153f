"""CPU seconds a worker spends per part of handling a segment: what the stand-in benchmark reports.

Each part is timed with the calling thread's own CPU clock
(``time.thread_time``), so a thread blocked on Redis or on a future costs
nothing and parts running on different threads add up. Two parts no
module of ours can time are read from whole threads instead: Celery's
consumer (the main thread: receiving and parsing messages) and Celery's
task threads less the handler they run (task tracing and the
acknowledgement). What is left of the process's CPU is ``other``.

Timing a part costs two clock reads and a locked add, about a microsecond.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARTS = ("message", "ledger", "storage", "quality", "encoding", "engine", "handler", "offloaded")
"""Parts timed in place; ``handler`` is the whole of our task function, inside Celery's task thread;
``offloaded`` the CPU of upload processes (``workers.offload``), whose parts are added to their names too."""
CELERY_TASK_THREAD = "ThreadPoolExecutor-"
"""Name prefix of the threads Celery's thread pool runs tasks on."""


class Costs:
    """Thread-safe CPU accumulators, one per part."""

    def __init__(self) -> None:
        self._seconds = dict.fromkeys(PARTS, 0.0)
        self._segments = 0
        self._lock = threading.Lock()

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.thread_time()
        try:
            yield
        finally:
            self.add(name, time.thread_time() - started)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] += seconds

    def count(self, segments: int = 1) -> None:
        """Segments handled (stored, or found stored)."""
        with self._lock:
            self._segments += segments

    def snapshot(self) -> dict[str, Any]:
        """Cumulative figures since the process started: parts, Celery's threads and the whole process."""
        with self._lock:
            parts = dict(self._seconds)
            segments = self._segments
        consumer = tasks = 0.0
        for thread in threading.enumerate():
            if thread.ident is None:
                continue
            if thread is threading.main_thread():
                consumer += _thread_cpu(thread.ident)
            elif thread.name.startswith(CELERY_TASK_THREAD):
                tasks += _thread_cpu(thread.ident)
        return {
            "at": time.time(),
            "pid": os.getpid(),
            "segments": segments,
            "parts": parts,
            "celery_consumer": consumer,
            "celery_tasks": tasks,
            "process": time.process_time(),
        }


def _thread_cpu(ident: int) -> float:
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (OSError, AttributeError):  # the thread ended meanwhile, or no per-thread clocks here
        return 0.0


COSTS = Costs()
"""This process's accumulators (one worker process serves one card)."""


def start_cost_reports(folder: Path, name: str, every_s: float = 0.5) -> threading.Event:
    """Write ``COSTS.snapshot()`` to ``folder/name.json`` every ``every_s`` until the returned event is set."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.json"
    stop = threading.Event()

    def loop() -> None:
        while True:
            partial = target.with_suffix(".tmp")
            partial.write_text(json.dumps(COSTS.snapshot()))
            partial.replace(target)  # readers never see half a file
            if stop.wait(every_s):
                return

    threading.Thread(target=loop, name="voxfarm-costs", daemon=True).start()
    return stop
