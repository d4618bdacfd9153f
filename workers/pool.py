"""`voxfarm pool`: one worker process per card, kept alive.

Children are started with the ``spawn`` start method: a card's runtime must
never be initialised in a parent and inherited through fork. Each child gets
its own card, Celery hostname and metrics port (base + i). A child that
dies is restarted with exponential backoff; SIGTERM is forwarded to every
child so each drains its batch before the pool exits. The pool itself
answers /healthz and /readyz (ready when every child is ready) for probes.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.process
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from shared.metrics import pool_metrics
from workers.health import HealthServer, HealthState

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)
HEALTHY_AFTER_S = 60.0
"""A child that ran this long without dying resets its backoff."""


@dataclass(frozen=True)
class ChildSpec:
    device: str
    metrics_port: int
    ready_file: Path
    hostname: str
    engine: str | None = None
    voice: str | None = None
    slot: int = 0


def _child_main(spec: ChildSpec, log_level: str, json_logs: bool) -> None:
    """Entry point of a spawned child: a fresh interpreter that becomes one worker."""
    import sys

    from shared.errors import VoxfarmError
    from shared.logs import configure_logging
    from shared.settings import load_settings
    from workers.worker import WorkerOptions, run_worker

    configure_logging(log_level, json_logs)
    try:
        code = run_worker(
            load_settings(),
            WorkerOptions(
                device=spec.device,
                engine=spec.engine,
                voice=spec.voice,
                metrics_port=spec.metrics_port,
                ready_file=spec.ready_file,
                hostname=spec.hostname,
                slot=spec.slot,
            ),
        )
    except VoxfarmError as exc:
        logging.getLogger("voxfarm.worker").critical("worker on %s failed: %s", spec.device, exc)
        sys.exit(exc.exit_code)
    sys.exit(code)


@dataclass
class Child:
    spec: ChildSpec
    process: multiprocessing.process.BaseProcess | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    next_start: float = 0.0


@dataclass
class Pool:
    children: list[Child]
    health_port: int | None = 9299
    health_host: str = "127.0.0.1"
    grace_s: float = 330.0
    log_level: str = "INFO"
    json_logs: bool = False
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self.metrics = pool_metrics()
        self.registry = self.metrics.registry
        self.state = HealthState()

    def _start(self, child: Child) -> None:
        child.spec.ready_file.unlink(missing_ok=True)
        process = self._context.Process(
            target=_child_main,
            args=(child.spec, self.log_level, self.json_logs),
            name=f"voxfarm-worker-{child.spec.device}",
        )
        process.start()
        child.process = process
        child.started_at = time.monotonic()
        log.info(
            "started worker for %s (pid %s, metrics port %d)", child.spec.device, process.pid, child.spec.metrics_port
        )

    def _ready(self) -> bool:
        return all(c.process is not None and c.process.is_alive() and c.spec.ready_file.exists() for c in self.children)

    def run(self) -> int:
        server = None
        if self.health_port is not None:
            server = HealthServer(self.health_host, self.health_port, self.registry, self.state)
            server.start()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for child in self.children:
                self._start(child)
            while not self._stopping.is_set():
                self._supervise()
                self.state.set_ready(self._ready())
                self._stopping.wait(0.5)
            return self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.state.set_ready(False)
            if server is not None:
                server.stop()

    def _supervise(self) -> None:
        now = time.monotonic()
        alive = 0
        for child in self.children:
            process = child.process
            if process is not None and process.is_alive():
                alive += 1
                if now - child.started_at > HEALTHY_AFTER_S:
                    child.failures_in_a_row = 0
                continue
            if process is not None:
                code = process.exitcode
                process.join(0)
                child.process = None
                delay = RESTART_BACKOFF_S[min(child.failures_in_a_row, len(RESTART_BACKOFF_S) - 1)]
                child.failures_in_a_row += 1
                child.next_start = now + delay
                log.warning("worker for %s exited with code %s; restarting in %.0fs", child.spec.device, code, delay)
            if now >= child.next_start:
                child.restarts += 1
                self.metrics.restarts.labels(device=child.spec.device).inc()
                self._start(child)
        self.metrics.workers_up.set(alive)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("pool received signal %d: draining every worker", signum)
        self._stopping.set()

    def _drain(self) -> int:
        for child in self.children:
            if child.process is not None and child.process.is_alive() and child.process.pid:
                import os

                os.kill(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        worst = 0
        for child in self.children:
            if child.process is None:
                continue
            child.process.join(max(deadline - time.monotonic(), 0.1))
            if child.process.is_alive():
                log.error("worker for %s did not drain in %.0fs; killing it", child.spec.device, self.grace_s)
                child.process.kill()
                child.process.join()
            code = child.process.exitcode or 0
            worst = worst if code in (0, -signal.SIGTERM) else code
        return abs(worst)


def build_pool(
    devices: list[str],
    *,
    metrics_port: int,
    health_port: int | None,
    health_host: str,
    engine: str | None,
    voice: str | None,
    ready_dir: Path | None,
    grace_s: float,
    log_level: str,
    json_logs: bool,
) -> Pool:
    host = socket.gethostname()
    directory = ready_dir or Path(tempfile.mkdtemp(prefix="voxfarm-pool-"))
    directory.mkdir(parents=True, exist_ok=True)
    children = [
        Child(
            ChildSpec(
                device=device,
                metrics_port=metrics_port + index if metrics_port else 0,
                ready_file=directory / f"{device.replace(':', '-')}-w{index}.ready",
                hostname=f"voxfarm-{device.replace(':', '')}-w{index}@{host}",
                slot=index,
                engine=engine,
                voice=voice,
            )
        )
        for index, device in enumerate(devices)
    ]
    return Pool(children, health_port, health_host, grace_s, log_level, json_logs)
