"""Real `voxfarm worker` and `voxfarm control` processes for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis


@dataclass
class VoxfarmProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_file: Path | None = None
    metrics_port: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ready_file is not None and not self.ready_file.exists():
            if not self.alive():
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready after {timeout_s}s:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


@dataclass
class FarmProcesses:
    """Starts voxfarm processes against one Redis and one storage; stops them all at teardown."""

    env: Mapping[str, str]
    workdir: Path
    started: list[VoxfarmProcess] = field(default_factory=list)

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        return {**os.environ, **self.env, **extra}

    def start(
        self,
        name: str,
        args: list[str],
        extra_env: Mapping[str, str] = {},
        ready_file: Path | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> VoxfarmProcess:
        """Start ``voxfarm ARGS``; ``wrap`` prefixes the command line (e.g. to run it in another namespace)."""
        log_path = self.workdir / f"{name}-{len(self.started)}.log"
        command = [sys.executable, "-m", "producer.cli", *args]
        process = subprocess.Popen(
            wrap(command) if wrap else command,
            env=self._env(extra_env),
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        started = VoxfarmProcess(name, process, log_path, ready_file)
        self.started.append(started)
        return started

    def worker(
        self,
        device: str = "cpu:0",
        *,
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] = {},
        wait: bool = True,
        name: str | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> VoxfarmProcess:
        label = name or f"worker-{device.replace(':', '')}-{len(self.started)}"
        ready = self.workdir / f"{label}.ready"
        proc = self.start(
            label,
            [
                "worker",
                "--device",
                device,
                "--metrics-port",
                "0",
                "--ready-file",
                str(ready),
                "--hostname",
                f"{label}@test",
                *extra_args,
            ],
            extra_env,
            ready,
            wrap,
        )
        if wait:
            proc.wait_ready()
        return proc

    def control(self, extra_env: Mapping[str, str] = {}) -> VoxfarmProcess:
        return self.start("control", ["control"], extra_env)

    def cli(
        self, *args: str, timeout_s: float = 300.0, extra_env: Mapping[str, str] = {}
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "producer.cli", *args],
            env=self._env(extra_env),
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()


def wait_for_state(redis_url: str, job: str, states: set[str], timeout_s: float = 300.0) -> str:
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        raw = client.hget(f"voxfarm:job:{job}:meta", "state")
        state = raw.decode() if raw else ""
        if state in states:
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job} stayed in state {state!r} for {timeout_s}s")
