"""`voxfarm pool`: one worker process per card, kept alive.

Children are started with the ``spawn`` start method: a card's runtime must
never be initialised in a parent and inherited through fork. Each child gets
its own card, Celery hostname and metrics port (base + i). A child that
dies is restarted with exponential backoff (``workers.supervisor``, which
the embedded farm uses too); SIGTERM is forwarded to every child so each
drains its batch before the pool exits. The pool itself
answers /healthz and /readyz (ready when every child is ready) for probes.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType

from shared.metrics import pool_metrics
from workers.health import HealthServer, HealthState
from workers.supervisor import Supervised, Supervisor

log = logging.getLogger(__name__)


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
class Spawned:
    """A spawned child as the supervisor sees it."""

    process: multiprocessing.process.BaseProcess

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def poll(self) -> int | None:
        return None if self.process.is_alive() else self.process.exitcode


@dataclass
class Pool:
    specs: list[ChildSpec]
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
        self.supervisor = Supervisor(
            [Supervised(f"worker for {spec.device}", partial(self._start, spec)) for spec in self.specs],
            on_restart=self._count_restart,
        )

    def _start(self, spec: ChildSpec) -> Spawned:
        spec.ready_file.unlink(missing_ok=True)
        process = self._context.Process(
            target=_child_main,
            args=(spec, self.log_level, self.json_logs),
            name=f"voxfarm-worker-{spec.device}",
        )
        process.start()
        log.info("started worker for %s (pid %s, metrics port %d)", spec.device, process.pid, spec.metrics_port)
        return Spawned(process)

    def _count_restart(self, slot: Supervised) -> None:
        device = self.specs[self.supervisor.children.index(slot)].device
        self.metrics.restarts.labels(device=device).inc()

    def _ready(self) -> bool:
        slots = zip(self.specs, self.supervisor.children, strict=True)
        return all(slot.alive() and spec.ready_file.exists() for spec, slot in slots)

    def _spawned(self) -> list[multiprocessing.process.BaseProcess]:
        """The children's processes; one that died and waits for its restart is not among them."""
        return [slot.process.process for slot in self.supervisor.children if isinstance(slot.process, Spawned)]

    def run(self) -> int:
        server = None
        if self.health_port is not None:
            server = HealthServer(self.health_host, self.health_port, self.registry, self.state)
            server.start()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.supervisor.start()
            while not self._stopping.is_set():
                self.metrics.workers_up.set(self.supervisor.supervise())
                self.state.set_ready(self._ready())
                self._stopping.wait(0.5)
            return self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.state.set_ready(False)
            if server is not None:
                server.stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("pool received signal %d: draining every worker", signum)
        self._stopping.set()

    def _drain(self) -> int:
        processes = self._spawned()
        for process in processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        worst = 0
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0.1))
            if process.is_alive():
                log.error("%s did not drain in %.0fs; killing it", process.name, self.grace_s)
                process.kill()
                process.join()
            code = process.exitcode or 0
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
    specs = [
        ChildSpec(
            device=device,
            metrics_port=metrics_port + index if metrics_port else 0,
            ready_file=directory / f"{device.replace(':', '-')}-w{index}.ready",
            hostname=f"voxfarm-{device.replace(':', '')}-w{index}@{host}",
            slot=index,
            engine=engine,
            voice=voice,
        )
        for index, device in enumerate(devices)
    ]
    return Pool(specs, health_port, health_host, grace_s, log_level, json_logs)
