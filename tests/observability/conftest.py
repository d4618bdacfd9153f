"""One observed render for the whole package: real Redis, SeaweedFS, two CPU workers, the control
service with its exporter, and a real Prometheus scraping them every second.

The book carries a distinctive word and the job a distinctive id, so the
tests can check that neither reaches a metrics endpoint; a malformed message
pushed into a bucket queue makes a real dead letter. Every process logs JSON
at debug level, so a segment can be followed through the logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from shared.buckets import model_name, queue_name
from shared.celery_app import SYNTHESIZE_TASK, create_app
from shared.settings import load_settings
from tests.conftest import S3_CREDENTIALS
from tests.observability.live import (
    BOOK,
    DASHBOARD,
    ENGINE,
    FIRST_BOOK,
    FIRST_JOB,
    JOB,
    POOL,
    RULES,
    VOICE,
    WORD,
    LiveRun,
)
from tests.support.books import write_book
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.prometheus import PrometheusServer, ScrapeJob, free_port
from tests.support.services import RedisService, SeaweedS3


@pytest.fixture(scope="package")
def live(
    redis_service: RedisService, s3_server: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveRun]:
    redis_service.flush()
    workdir = tmp_path_factory.mktemp("observed")
    env = {
        "VOXFARM_STORAGE_URL": f"s3://{s3_server.new_bucket()}/farm",
        "VOXFARM_S3_ENDPOINT_URL": s3_server.endpoint,
        **S3_CREDENTIALS,
        "VOXFARM_REDIS_URL": redis_service.url,
        "VOXFARM_CACHE_DIR": str(workdir / "cache"),
        "XDG_CACHE_HOME": str(workdir / "xdg-cache"),
        "VOXFARM_MAX_WAIT_MS": "20",
        "VOXFARM_LOG_FORMAT": "json",
        "VOXFARM_LOG_LEVEL": "DEBUG",
    }
    farm = FarmProcesses(env, workdir)
    worker_ports = [free_port(), free_port()]
    exporter_port = free_port()
    prometheus = PrometheusServer(
        [
            ScrapeJob("voxfarm-worker", [f"127.0.0.1:{port}" for port in worker_ports], {"pool": POOL}),
            ScrapeJob("voxfarm-control", [f"127.0.0.1:{exporter_port}"]),
        ],
        rule_files=[RULES],
        workdir=workdir / "prometheus",
    )
    prometheus.workdir.mkdir()
    try:
        prometheus.start()
        control = farm.start("control", ["control", "--metrics-port", str(exporter_port)])
        prometheus.wait_for('up{job="voxfarm-control"}')

        # A first book is queued before any worker runs, so the exporter sees its work waiting.
        first = farm.cli("submit", str(write_book(workdir, FIRST_BOOK, "harbour.md")), "--job", FIRST_JOB)
        assert first.returncode == 0, first.stderr
        prometheus.wait_for("max(voxfarm_queue_oldest_age_seconds) * max(voxfarm_queue_work_seconds)")
        workers = [
            farm.worker(f"cpu:{i}", extra_args=["--metrics-port", str(port)], wait=False)
            for i, port in enumerate(worker_ports)
        ]
        for worker in workers:
            worker.wait_ready()
        assert wait_for_state(redis_service.url, FIRST_JOB, {"done", "failed"}, 120) == "done"
        # Every worker series has been scraped (counters at 0 included) before the observed book runs,
        # as in a long-running farm, so rate(), increase() and the alerts see each change.
        prometheus.wait_for(f'min(timestamp(up{{job="voxfarm-worker"}})) > {time.time() + 1:.3f}')
        prometheus.wait_for('count(voxfarm_dead_letters_total{reason="invalid"}) == bool 2')

        # A malformed message in a bucket queue: a worker must dead-letter it, and neither the
        # job id nor the word it carries may reach a metrics endpoint.
        app = create_app(load_settings(redis_url=redis_service.url))
        app.send_task(
            SYNTHESIZE_TASK,
            kwargs={"segment": {"job": JOB, "text": f"{WORD} was here", "ids": [1, 2, 3]}},
            queue=queue_name(model_name(ENGINE, VOICE), 32),
        )
        submitted = farm.cli("submit", str(write_book(workdir, BOOK, "signal-tower.md")), "--job", JOB, "--json")
        assert submitted.returncode == 0, submitted.stderr
        assert json.loads(submitted.stdout)["job"] == JOB
        assert wait_for_state(redis_service.url, JOB, {"done", "failed"}, 120) == "done"
        finished_at = time.time()

        # Enough scrapes after the end for every series to be in, the dead letter included.
        prometheus.wait_for('sum(voxfarm_dead_letters_total{reason="invalid"})')
        prometheus.wait_for("max(voxfarm_segments_remaining) == bool 0")
        prometheus.wait_for(f'timestamp(up{{job="voxfarm-control"}}) > {finished_at + 3:.3f}')
        prometheus.wait_for(f'min(timestamp(up{{job="voxfarm-worker"}})) > {finished_at + 3:.3f}')
        yield LiveRun(prometheus, farm, workers, worker_ports, control, exporter_port, submitted.stderr, finished_at)
    finally:
        farm.stop_all()
        prometheus.stop()


@pytest.fixture(scope="package")
def dashboard() -> dict[str, object]:
    return dict(json.loads(DASHBOARD.read_text()))
