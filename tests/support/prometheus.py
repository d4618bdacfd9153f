"""A real Prometheus server (Debian's `prometheus`) scraping loopback targets, and `promtool`.

The server gets its own config file, a temporary TSDB and a free loopback
port; it is stopped by the PID that was started.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_text(url: str, timeout_s: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return bytes(response.read()).decode()


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        raise RuntimeError("`promtool` is missing: apt-get install prometheus")
    return subprocess.run(
        [binary, *args], input=stdin, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@dataclass
class ScrapeJob:
    name: str
    targets: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PrometheusServer:
    jobs: Sequence[ScrapeJob]
    rule_files: Sequence[Path] = ()
    interval: str = "1s"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="voxfarm-prometheus-")))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": job.name, "static_configs": [{"targets": list(job.targets), "labels": dict(job.labels)}]}
                for job in self.jobs
            ],
        }

    def start(self, timeout_s: float = 60.0) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("`prometheus` is missing: apt-get install prometheus")
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps(self.config(), indent=2))  # JSON is YAML
        self.port = self.port or free_port()
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log()[-3000:]}")
            try:
                if "Ready" in http_text(f"{self.url}/-/ready", 2):
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus did not become ready: {self.log()[-3000:]}")

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, path: str, **params: str | Sequence[str]) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            body = json.loads(http_text(f"{self.url}/api/v1/{path}?{query}"))
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read().decode())
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query; each result is {"metric": labels, "value": [time, "text"]}."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def value(self, expr: str, at: float | None = None) -> float:
        """The one value an expression evaluates to (NaN when it returns nothing)."""
        result = self.query(expr, at)
        return float(result[0]["value"][1]) if result else math.nan

    def wait_for(self, expr: str, timeout_s: float = 60.0) -> float:
        """Wait until ``expr`` returns a value above 0 and return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.value(expr)
            if value > 0:
                return value
            time.sleep(0.5)
        raise AssertionError(f"{expr} stayed empty or 0 for {timeout_s}s; targets: {self.api('targets')}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
