"""Warm-up with real worker processes: not ready until warmed up; tuning measured once, then cached."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_pool import http_status, http_text, wait_until
from tests.support.processes import FarmProcesses
from tests.support.services import free_port_pair

MEASURE = {"VOXFARM_BATCH_TUNING": "measure", "VOXFARM_MAX_BATCH_ITEMS": "4", "VOXFARM_BUCKET_EDGES": "[32, 64, 128]"}


def test_readiness_turns_true_only_after_warm_up_and_tuning_is_cached(
    farm: FarmProcesses, farm_env: dict[str, str]
) -> None:
    port = free_port_pair()
    worker = farm.worker("cpu:0", extra_args=["--metrics-port", str(port)], extra_env=MEASURE, wait=False)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_status(f"{base}/healthz") == 200, 60, "the worker's probe port")

    assert http_status(f"{base}/readyz") == 503
    assert worker.ready_file is not None and not worker.ready_file.exists()
    assert "voxfarm_worker_ready{" in http_text(f"{base}/metrics")
    assert 'voxfarm_worker_ready{card="0",engine="piper-onnx",family="cpu",voice="en_US-joe-medium"} 0.0' in http_text(
        f"{base}/metrics"
    )

    wait_until(lambda: http_status(f"{base}/readyz") == 200, 180, "warm-up to finish")
    assert worker.ready_file.exists()
    assert "warm-up of" in worker.log() and "items/s" in worker.log()

    cache = Path(farm_env["VOXFARM_CACHE_DIR"]) / "tuning"
    assert len(list(cache.glob("piper-onnx-*.json"))) == 1

    second = farm.start(
        "warmup-only", ["worker", "--device", "cpu", "--warmup-only", "--metrics-port", "0"], extra_env=MEASURE
    )
    assert second.process.wait(120) == 0, second.log()[-2000:]
    assert "from the tuning cache" in second.log()
    assert "items/s" not in second.log()
