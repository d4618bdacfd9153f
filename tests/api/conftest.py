"""A farm with the HTTP service in front, shared by the tests of one module (workers take a while to warm up)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import S3_CREDENTIALS
from tests.support.api import ApiServer, start_api
from tests.support.processes import FarmProcesses
from tests.support.services import RedisService, SeaweedS3


@pytest.fixture(scope="module")
def module_farm(
    redis_service: RedisService, s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FarmProcesses]:
    """Redis (emptied), a fresh bucket, one CPU worker and the control service, for one test module."""
    redis_service.flush()
    workdir = tmp_path_factory.mktemp("api-farm")
    env = {
        "VOXFARM_STORAGE_URL": f"s3://{s3_server.new_bucket()}/farm",
        "VOXFARM_S3_ENDPOINT_URL": s3_server.endpoint,
        **S3_CREDENTIALS,
        "VOXFARM_REDIS_URL": redis_service.url,
        "VOXFARM_CACHE_DIR": str(workdir / "cache"),
        "XDG_CACHE_HOME": str(workdir / "xdg-cache"),
        "VOXFARM_MAX_WAIT_MS": "20",
    }
    farm = FarmProcesses(env, workdir)
    farm.worker("cpu:0")
    farm.control()
    yield farm
    farm.stop_all()


@pytest.fixture(scope="module")
def api(module_farm: FarmProcesses) -> ApiServer:
    uploads = Path(module_farm.workdir) / "api-tmp"
    uploads.mkdir()
    return start_api(module_farm, {"TMPDIR": str(uploads), "VOXFARM_API_UPLOAD_IDLE_TIMEOUT_S": "2"})
