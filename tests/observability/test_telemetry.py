"""The records the runner, warm-up, the message handler and the worker process produce, turned into series."""

from __future__ import annotations

from shared.metrics import worker_metrics
from workers.devices.base import MemoryStats
from workers.engines.base import WarmupRecord
from workers.records import (
    BatchRecord,
    DeadLetterRecord,
    FailureRecord,
    InFlightRecord,
    ReadyRecord,
    RetryRecord,
    SegmentRecord,
    UploadRecord,
    WarmupSummary,
)
from workers.telemetry import MetricsObserver, WorkerIdentity, compile_cache_hit, record_warmup

IDENTITY = WorkerIdentity("piper-torch", "en_US-joe-medium", "cuda", "3")
LABELS = IDENTITY.labels


def _batch(compute_s: float, *, edge: int = 64, size: int = 4) -> BatchRecord:
    return BatchRecord(
        edge=edge,
        size=size,
        reason="full",
        padded_tokens=edge * size,
        useful_tokens=edge * size // 2,
        padded_frames=0,
        useful_frames=0,
        compute_s=compute_s,
        audio_s=10.0,
        chars=200,
        stage_seconds={"encoder": 0.1, "vocoder": 0.3},
        queue_wait_s=[1.0] * size,
    )


def test_a_compiled_shape_whose_first_call_is_about_as_fast_as_steady_is_a_cache_hit() -> None:
    assert compile_cache_hit(WarmupRecord(64, 4, 256, first_s=0.9, steady_s=0.02, eager_s=0.05)) is True
    assert compile_cache_hit(WarmupRecord(64, 4, 256, first_s=48.0, steady_s=0.02, eager_s=0.05)) is False
    assert compile_cache_hit(WarmupRecord(512, 16, 2048, first_s=9.0, steady_s=1.5, eager_s=2.0)) is True
    assert compile_cache_hit(WarmupRecord(64, 1, None, first_s=0.3, steady_s=0.2)) is None  # not compiled


def test_warmup_records_count_hits_misses_and_the_seconds_compiling_cost() -> None:
    metrics = worker_metrics()
    records = [
        WarmupRecord(32, 1, 128, first_s=40.0, steady_s=0.01, eager_s=0.02),
        WarmupRecord(64, 1, 256, first_s=0.5, steady_s=0.01, eager_s=0.02),
        WarmupRecord(128, 1, 512, first_s=0.6, steady_s=0.02, eager_s=0.03),
    ]

    record_warmup(metrics, IDENTITY, records)

    get = metrics.registry.get_sample_value
    assert get("voxfarm_compile_cache_hits_total", LABELS) == 2
    assert get("voxfarm_compile_cache_misses_total", LABELS) == 1
    assert get("voxfarm_compile_seconds", LABELS) == 40.0 - 0.01 + 0.5 - 0.01 + 0.6 - 0.02


def test_the_first_batch_is_kept_and_batches_feed_throughput_padding_stages_and_rtf() -> None:
    metrics = worker_metrics()
    observer = MetricsObserver(metrics, IDENTITY, edges=(32, 64))

    observer(_batch(2.5))
    observer(_batch(0.5))
    observer(UploadRecord(seconds=0.04, bytes=1000, encode_s=0.01, ok=True))
    observer(UploadRecord(seconds=0.5, bytes=0, encode_s=0.0, ok=False, error="EndpointConnectionError"))
    observer(FailureRecord("oom", 4, "out of memory"))

    get = metrics.registry.get_sample_value
    bucket = {**LABELS, "bucket": "64"}
    assert get("voxfarm_first_batch_seconds", LABELS) == 2.5
    assert get("voxfarm_audio_seconds_total", LABELS) == 20.0
    assert get("voxfarm_characters_total", LABELS) == 400
    assert get("voxfarm_batch_padding_efficiency_ratio_sum", bucket) == 1.0
    assert get("voxfarm_real_time_factor_ratio_sum", bucket) == 0.25 + 0.05
    assert get("voxfarm_queue_wait_seconds_count", bucket) == 8
    assert get("voxfarm_stage_seconds_count", {**LABELS, "stage": "vocoder"}) == 2
    assert get("voxfarm_stage_seconds_count", {**LABELS, "stage": "upload"}) == 1
    assert get("voxfarm_storage_written_bytes_total", LABELS) == 1000
    assert get("voxfarm_storage_errors_total", {**LABELS, "operation": "put"}) == 1
    assert get("voxfarm_batch_failures_total", {**LABELS, "kind": "oom"}) == 1


def test_known_label_sets_exist_at_zero_before_anything_happens() -> None:
    metrics = worker_metrics()

    MetricsObserver(metrics, IDENTITY, edges=(32, 64))

    get = metrics.registry.get_sample_value
    assert get("voxfarm_retries_total", {**LABELS, "reason": "storage"}) == 0
    assert get("voxfarm_dead_letters_total", {**LABELS, "reason": "retries_exhausted"}) == 0
    assert get("voxfarm_batch_failures_total", {**LABELS, "kind": "time_limit"}) == 0
    assert get("voxfarm_real_time_factor_ratio_count", {**LABELS, "bucket": "32"}) == 0
    assert get("voxfarm_segments_total", {**LABELS, "bucket": "64", "status": "rendered"}) == 0
    assert get("voxfarm_first_batch_seconds", LABELS) is None  # only once a batch ran


def test_the_handler_and_the_process_report_segments_retries_readiness_warmup_and_memory_as_records() -> None:
    metrics = worker_metrics()
    observer = MetricsObserver(metrics, IDENTITY, edges=(32, 64))
    warmed = [WarmupRecord(tokens=64, batch=4, frames=None, first_s=30.0, steady_s=0.1, eager_s=0.2)]

    observer(ReadyRecord(False))
    observer(WarmupSummary(12.5, "NVIDIA H200", "1", {"torch": "2.13.0"}, {32: 8, 64: 4}, warmed))
    observer(ReadyRecord(True))
    observer(InFlightRecord(+1))
    observer(InFlightRecord(+1))
    observer(InFlightRecord(-1))
    observer(SegmentRecord(64, "rendered"))
    observer(SegmentRecord(64, "exists"))
    observer(RetryRecord("worker_fault"))
    observer(RetryRecord("storage"))
    observer(DeadLetterRecord("invalid"))
    observer(MemoryStats(free_bytes=10, total_bytes=100, allocated_bytes=80, peak_bytes=90))

    get = metrics.registry.get_sample_value
    assert get("voxfarm_worker_ready", LABELS) == 1
    assert get("voxfarm_warmup_seconds", LABELS) == 12.5
    assert get("voxfarm_compile_cache_misses_total", LABELS) == 1
    info = {**LABELS, "device": "NVIDIA H200", "engine_version": "1", "torch": "2.13.0"}
    assert get("voxfarm_worker_info", info) == 1
    assert get("voxfarm_tuned_batch_size_items", {**LABELS, "bucket": "32"}) == 8
    assert get("voxfarm_inflight_segments", LABELS) == 1
    assert get("voxfarm_segments_total", {**LABELS, "bucket": "64", "status": "rendered"}) == 1
    assert get("voxfarm_segments_total", {**LABELS, "bucket": "64", "status": "exists"}) == 1
    assert get("voxfarm_retries_total", {**LABELS, "reason": "worker_fault"}) == 1
    assert get("voxfarm_retries_total", {**LABELS, "reason": "storage"}) == 1
    assert get("voxfarm_dead_letters_total", {**LABELS, "reason": "invalid"}) == 1
    assert get("voxfarm_device_memory_bytes", {**LABELS, "kind": "used"}) == 80
    assert get("voxfarm_device_memory_bytes", {**LABELS, "kind": "reserved"}) is None  # the backend could not say
