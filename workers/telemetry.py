"""Turns a worker's plain records into Prometheus series: the only place a worker process writes one.

The runner reports batches, uploads and failures; the message handler and
the worker process report segments, retries, dead letters, readiness,
warm-up and device memory (``workers.records``). All of them reach
``MetricsObserver``.

Every label value comes from the worker's identity, a bucket edge, a stage
name or a fixed reason; never from a message, so no job id, key or text can
reach the metrics endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.metrics import (
    DEAD_LETTER_REASONS,
    FAILURE_KINDS,
    RETRY_REASONS,
    SEGMENT_STATUSES,
    STORAGE_OPERATIONS,
    WorkerMetrics,
)
from workers.devices.base import MemoryStats
from workers.engines.base import WarmupRecord
from workers.records import (
    BatchRecord,
    DeadLetterRecord,
    FailureRecord,
    InFlightRecord,
    ProcessRecord,
    ReadyRecord,
    RetryRecord,
    SegmentRecord,
    UploadRecord,
    WarmupSummary,
)

COMPILE_HIT_SLACK_S = 2.0
"""A compiled shape whose first call costs at most this much over its steady call (or COMPILE_HIT_FACTOR
steady calls, whichever is more) found its graph in the compile cache: loading a cached graph costs tracing
and a file read, compiling one costs tens of seconds per stage."""
COMPILE_HIT_FACTOR = 10.0


@dataclass(frozen=True)
class WorkerIdentity:
    engine: str
    voice: str
    family: str
    card: str

    @property
    def labels(self) -> dict[str, str]:
        return {"engine": self.engine, "voice": self.voice, "family": self.family, "card": self.card}


def compile_cache_hit(record: WarmupRecord) -> bool | None:
    """Whether a warm-up shape's compiled graph came from the cache; None for engines that do not compile.

    Engines that compile time each shape eagerly too (``eager_s``); the
    first call's excess over the steady call is what compiling cost.
    """
    if record.eager_s is None:
        return None
    return record.first_s - record.steady_s <= max(COMPILE_HIT_SLACK_S, COMPILE_HIT_FACTOR * record.steady_s)


def record_warmup(metrics: WorkerMetrics, identity: WorkerIdentity, records: Iterable[WarmupRecord]) -> None:
    """Compile-cache hits and misses and the seconds compiling cost, from the engine's warm-up records."""
    labels = identity.labels
    hits = metrics.compile_cache_hits.labels(**labels)
    misses = metrics.compile_cache_misses.labels(**labels)
    compiling = 0.0
    for record in records:
        hit = compile_cache_hit(record)
        if hit is None:
            continue
        (hits if hit else misses).inc()
        compiling += max(record.first_s - record.steady_s, 0.0)
    metrics.compile_seconds.labels(**labels).set(compiling)


class MetricsObserver:
    """The worker's observer: one call per record, from the runner, the message handler or the process."""

    def __init__(self, metrics: WorkerMetrics, identity: WorkerIdentity, *, edges: Iterable[int] = ()) -> None:
        self.metrics = metrics
        self.identity = identity
        self.labels = identity.labels
        self._first_batch_seen = False
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._declare_series(edges)

    def _child(self, metric: Any, **extra: str) -> Any:
        """``metric.labels(worker labels, **extra)``, looked up once per label set: a segment updates several."""
        key = (id(metric), tuple(extra.values()))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(**self.labels, **extra)
        return child

    def _declare_series(self, edges: Iterable[int]) -> None:
        """Create the label sets known in advance at zero.

        A series that first appears with its first increment already in it
        looks flat to rate() and increase(); declared at start, every bucket
        and reason has a 0 sample before its first change.
        """
        m, labels = self.metrics, self.labels
        for edge in edges:
            bucket = {**labels, "bucket": str(edge)}
            for histogram in (m.queue_wait, m.batch_size, m.padding_efficiency, m.real_time_factor):
                histogram.labels(**bucket)
            for status in SEGMENT_STATUSES:
                m.segments.labels(**bucket, status=status)
        for counter in (m.audio_seconds, m.characters, m.compile_cache_hits, m.compile_cache_misses, m.storage_bytes):
            counter.labels(**labels)
        for reason in RETRY_REASONS:
            m.retries.labels(**labels, reason=reason)
        for reason in DEAD_LETTER_REASONS:
            m.dead_letters.labels(**labels, reason=reason)
        for kind in FAILURE_KINDS:
            m.failures.labels(**labels, kind=kind)
        for operation in STORAGE_OPERATIONS:
            m.storage_errors.labels(**labels, operation=operation)
            m.storage_seconds.labels(**labels, operation=operation)
        m.inflight.labels(**labels)

    def __call__(self, record: BatchRecord | UploadRecord | FailureRecord | ProcessRecord) -> None:
        m = self.metrics
        if isinstance(record, BatchRecord):
            self._batch(record)
        elif isinstance(record, UploadRecord):
            self._upload(record)
        elif isinstance(record, FailureRecord):
            self._child(m.failures, kind=record.kind).inc()
        elif isinstance(record, SegmentRecord):
            self._child(m.segments, bucket=str(record.bucket), status=record.status).inc()
        elif isinstance(record, RetryRecord):
            self._child(m.retries, reason=record.reason).inc()
        elif isinstance(record, DeadLetterRecord):
            self._child(m.dead_letters, reason=record.reason).inc()
        elif isinstance(record, InFlightRecord):
            self._child(m.inflight).inc(record.change)
        elif isinstance(record, ReadyRecord):
            self._child(m.ready).set(1 if record.ready else 0)
        elif isinstance(record, WarmupSummary):
            self._warmup(record)
        else:
            self._memory(record)

    def _warmup(self, record: WarmupSummary) -> None:
        m, labels = self.metrics, self.labels
        m.warmup_seconds.labels(**labels).set(record.seconds)
        record_warmup(m, self.identity, record.records)
        m.info.labels(**labels).info(
            {"device": record.device, "engine_version": record.engine_version, **record.versions}
        )
        for edge, size in record.tuned.items():
            m.tuned_batch_size.labels(**labels, bucket=str(edge)).set(size)

    def _memory(self, stats: MemoryStats) -> None:
        for kind, value in (
            ("free", stats.free_bytes),
            ("total", stats.total_bytes),
            ("used", stats.allocated_bytes),
            ("peak", stats.peak_bytes),
            ("reserved", stats.reserved_bytes),
        ):
            if value is not None:
                self.metrics.device_memory.labels(**self.labels, kind=kind).set(value)

    def _batch(self, record: BatchRecord) -> None:
        m, child, bucket = self.metrics, self._child, str(record.edge)
        if not self._first_batch_seen:  # only the runner thread reports batches
            self._first_batch_seen = True
            child(m.first_batch_seconds).set(record.compute_s)
        child(m.batches, bucket=bucket, reason=record.reason).inc()
        child(m.batch_size, bucket=bucket).observe(record.size)
        if record.padded_tokens:
            child(m.padding_efficiency, bucket=bucket).observe(record.useful_tokens / record.padded_tokens)
        if record.audio_s > 0:
            child(m.real_time_factor, bucket=bucket).observe(record.compute_s / record.audio_s)
        child(m.audio_seconds).inc(record.audio_s)
        child(m.characters).inc(record.chars)
        queue_wait = child(m.queue_wait, bucket=bucket)
        for wait in record.queue_wait_s:
            queue_wait.observe(wait)
        for stage, seconds in record.stage_seconds.items():
            child(m.stage_seconds, stage=stage).observe(seconds)

    def _upload(self, record: UploadRecord) -> None:
        m, child = self.metrics, self._child
        if record.ok:
            child(m.stage_seconds, stage="encode").observe(record.encode_s)
            child(m.stage_seconds, stage="upload").observe(record.seconds)
            child(m.storage_seconds, operation="put").observe(record.seconds)
            child(m.storage_bytes).inc(record.bytes)
        else:
            child(m.storage_errors, operation="put").inc()
