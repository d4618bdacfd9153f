"""Redis AUTH and TLS against real servers, and secrets that never reach a log."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.embedded import LocalRedis
from tests.support.books import write_book
from tests.support.processes import FarmProcesses, wait_for_state

PASSWORD = "correct-horse-battery-staple-7731"


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl)."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    extension = directory / "ext.cnf"
    extension.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=voxfarm-test-ca",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(extension),
    )
    return cert, key, ca


@pytest.fixture
def auth_redis() -> Iterator[LocalRedis]:
    server = LocalRedis(password=PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(password=PASSWORD, tls=make_certificates(tmp_path))
    server.start()
    yield server
    server.stop()


def _render(farm: FarmProcesses, env: dict[str, str], tmp_path: Path) -> str:
    farm.worker("cpu:0", extra_env=env)
    farm.control(extra_env=env)
    result = farm.cli("submit", str(write_book(tmp_path)), "--json", extra_env=env)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["job"])


def test_a_farm_runs_on_a_redis_with_a_password_kept_out_of_the_url(
    farm: FarmProcesses, auth_redis: LocalRedis, tmp_path: Path
) -> None:
    plain_url = f"redis://127.0.0.1:{auth_redis.port}/0"
    env = {"VOXFARM_REDIS_URL": plain_url, "VOXFARM_REDIS_PASSWORD": PASSWORD, "VOXFARM_LOG_LEVEL": "DEBUG"}
    job = _render(farm, env, tmp_path)
    assert wait_for_state(auth_redis.url, job, {"done"}, 240) == "done"
    for process in farm.started:
        assert PASSWORD not in process.log(), f"{process.name} logged the Redis password"

    refused = farm.cli("status", job, extra_env={"VOXFARM_REDIS_URL": plain_url, "VOXFARM_REDIS_PASSWORD": ""})
    assert refused.returncode == 3 and "Traceback" not in refused.stderr
    assert "authentication" in refused.stderr.lower()


def test_a_farm_runs_over_tls_and_refuses_a_server_it_cannot_verify(
    farm: FarmProcesses, tls_redis: LocalRedis, tmp_path: Path
) -> None:
    assert tls_redis.tls is not None
    ca = tls_redis.tls[2]
    env = {"VOXFARM_REDIS_URL": tls_redis.url, "VOXFARM_REDIS_TLS_CA_FILE": str(ca)}
    job = _render(farm, env, tmp_path)
    assert wait_for_state(tls_redis.url + f"?ssl_ca_certs={ca}", job, {"done"}, 240) == "done"

    other = tmp_path / "other"
    other.mkdir()
    other_ca = make_certificates(other)[2]
    refused = farm.cli("status", job, extra_env={**env, "VOXFARM_REDIS_TLS_CA_FILE": str(other_ca)})
    assert refused.returncode == 3 and "Traceback" not in refused.stderr
    assert "certificate" in refused.stderr.lower()


def test_storage_credentials_and_content_never_reach_the_logs(
    farm: FarmProcesses, farm_env: dict[str, str], tmp_path: Path
) -> None:
    secret = farm_env["AWS_SECRET_ACCESS_KEY"]
    env = {"VOXFARM_LOG_LEVEL": "DEBUG", "VOXFARM_LOG_FORMAT": "json"}
    job = _render(farm, env, tmp_path)
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done"}, 240) == "done"
    for process in farm.started:
        assert secret not in process.log(), f"{process.name} logged the S3 secret key"
