"""Turns the runner's plain records into Prometheus series (the only place that does)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.metrics import WorkerMetrics
from workers.runner import BatchRecord, FailureRecord, UploadRecord


@dataclass(frozen=True)
class WorkerIdentity:
    engine: str
    voice: str
    family: str
    card: str

    @property
    def labels(self) -> dict[str, str]:
        return {"engine": self.engine, "voice": self.voice, "family": self.family, "card": self.card}


class MetricsObserver:
    def __init__(self, metrics: WorkerMetrics, identity: WorkerIdentity) -> None:
        self.metrics = metrics
        self.labels = identity.labels

    def __call__(self, record: BatchRecord | UploadRecord | FailureRecord) -> None:
        if isinstance(record, BatchRecord):
            self._batch(record)
        elif isinstance(record, UploadRecord):
            self._upload(record)
        else:
            self.metrics.failures.labels(**self.labels, kind=record.kind).inc()

    def _batch(self, record: BatchRecord) -> None:
        m, labels = self.metrics, self.labels
        bucket = {**labels, "bucket": str(record.edge)}
        m.batches.labels(**bucket, reason=record.reason).inc()
        m.batch_size.labels(**bucket).observe(record.size)
        if record.padded_tokens:
            m.padding_efficiency.labels(**bucket).observe(record.useful_tokens / record.padded_tokens)
        if record.audio_s > 0:
            m.real_time_factor.labels(**bucket).observe(record.compute_s / record.audio_s)
        m.audio_seconds.labels(**labels).inc(record.audio_s)
        m.characters.labels(**labels).inc(record.chars)
        for wait in record.queue_wait_s:
            m.queue_wait.labels(**bucket).observe(wait)
        for stage, seconds in record.stage_seconds.items():
            m.stage_seconds.labels(**labels, stage=stage).observe(seconds)

    def _upload(self, record: UploadRecord) -> None:
        m, labels = self.metrics, self.labels
        if record.ok:
            m.stage_seconds.labels(**labels, stage="encode").observe(record.encode_s)
            m.stage_seconds.labels(**labels, stage="upload").observe(record.seconds)
            m.storage_seconds.labels(**labels, operation="put").observe(record.seconds)
            m.storage_bytes.labels(**labels).inc(record.bytes)
        else:
            m.storage_errors.labels(**labels, operation="put").inc()
