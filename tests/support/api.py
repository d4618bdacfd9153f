"""The HTTP service as a user runs it: `voxfarm api` in its own process on a loopback port."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from producer.embedded import free_port
from tests.support.processes import FarmProcesses, VoxfarmProcess


@dataclass
class ApiServer:
    farm: FarmProcesses
    process: VoxfarmProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, tenant: str = "default", scopes: str = "read,submit", *extra: str) -> str:
        """A token made the way an operator makes one: `voxfarm tokens create`."""
        done = self.farm.cli("tokens", "create", "--tenant", tenant, "--scopes", scopes, "--json", *extra)
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["token"])

    def client(self, token: str | None = None, **options: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=options.pop("timeout", 60.0), **options)


def start_api(farm: FarmProcesses, extra_env: dict[str, str] | None = None, timeout_s: float = 60.0) -> ApiServer:
    port = free_port()
    process = farm.start("api", ["api", "--host", "127.0.0.1", "--port", str(port)], extra_env or {})
    deadline = time.monotonic() + timeout_s
    while True:
        if not process.alive():
            raise AssertionError(f"voxfarm api exited with {process.process.returncode}:\n{process.log()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return ApiServer(farm, process, port)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"voxfarm api not ready after {timeout_s}s:\n{process.log()[-3000:]}")
        time.sleep(0.1)


def wait_for_job(client: httpx.Client, job: str, states: set[str], timeout_s: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    detail: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job}")
        assert response.status_code == 200, response.text
        detail = response.json()
        if detail["state"] in states:
            return detail
        time.sleep(0.3)
    raise AssertionError(f"job {job} stayed {detail.get('state')!r} for {timeout_s}s")
