"""Fixtures that start the real parts: Redis, SeaweedFS, voxfarm processes.

Nothing is mocked here and nothing is skipped: if a service cannot start,
the tests that need it fail with the reason.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import FarmProcesses
from tests.support.services import RedisService, SeaweedS3, start_redis

# The Qwen3-TTS tests need that engine's own environment (.venv-qwen: torch 2.9.1, torchaudio,
# qwen_tts); `.ci/test-qwen` runs them there. Elsewhere the folder is not collected.
collect_ignore = [] if importlib.util.find_spec("qwen_tts") else ["qwen"]

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
CONTRACTS = REPO / "tests" / "contracts"


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisService]:
    service = start_redis()
    yield service
    service.stop()


@pytest.fixture
def redis_url(redis_service: RedisService) -> str:
    """A Redis database emptied for this test."""
    redis_service.flush()
    return redis_service.url


S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "voxfarm-test",
    "AWS_SECRET_ACCESS_KEY": "voxfarm-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    """SeaweedFS for the session; the test process itself talks to it with the test credentials."""
    saved = {name: os.environ.get(name) for name in S3_CREDENTIALS}
    os.environ.update(S3_CREDENTIALS)
    server = SeaweedS3()
    server.start()
    yield server
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def s3_env(s3_server: SeaweedS3) -> dict[str, str]:
    """Environment that points voxfarm at a fresh bucket of the SeaweedFS server."""
    bucket = s3_server.new_bucket()
    return {
        "VOXFARM_STORAGE_URL": f"s3://{bucket}/farm",
        "VOXFARM_S3_ENDPOINT_URL": s3_server.endpoint,
        **S3_CREDENTIALS,
    }


@pytest.fixture
def farm_env(redis_url: str, s3_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **s3_env,
        "VOXFARM_REDIS_URL": redis_url,
        "VOXFARM_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "VOXFARM_MAX_WAIT_MS": "20",
    }


@pytest.fixture
def farm(farm_env: dict[str, str], tmp_path: Path) -> Iterator[FarmProcesses]:
    processes = FarmProcesses(farm_env, tmp_path)
    yield processes
    processes.stop_all()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.support.fault_report import write_report

    write_report()
