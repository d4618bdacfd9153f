"""What a worker reports, as plain records: batches, uploads and failures from
the runner; segments, retries, dead letters and readiness from the message
handler and the process.

``workers.telemetry`` turns every record into Prometheus series, so no other
module writes a metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from workers.devices.base import MemoryStats
from workers.engines.base import WarmupRecord


@dataclass
class BatchRecord:
    """Statistics of one engine call, for metrics and logs."""

    edge: int
    size: int
    reason: str
    padded_tokens: int
    useful_tokens: int
    padded_frames: int
    useful_frames: int
    compute_s: float
    audio_s: float
    chars: int
    stage_seconds: dict[str, float]
    queue_wait_s: list[float] = field(default_factory=list)
    folded_from: int | None = None


@dataclass
class UploadRecord:
    seconds: float
    bytes: int
    encode_s: float
    ok: bool
    error: str = ""


@dataclass
class FailureRecord:
    kind: str
    """poison, oom, time_limit, device, or quality (a take failed the quality gate)."""
    size: int
    message: str


Observer = Callable[[BatchRecord | UploadRecord | FailureRecord], None]


def ignore(_record: BatchRecord | UploadRecord | FailureRecord) -> None:
    """The observer of a runner nobody watches."""
    return None


@dataclass(frozen=True)
class SegmentRecord:
    """A segment finished: ``rendered`` (synthesised and stored) or ``exists`` (already in storage)."""

    bucket: int
    status: str


@dataclass(frozen=True)
class RetryRecord:
    """A segment went back for another attempt; ``reason`` is one of ``RETRY_REASONS`` or ``worker_fault``."""

    reason: str


@dataclass(frozen=True)
class DeadLetterRecord:
    """A message was given up and sent to the dead-letter list."""

    reason: str


@dataclass(frozen=True)
class InFlightRecord:
    """A segment entered (+1) or left (-1) this worker's hands."""

    change: int


@dataclass(frozen=True)
class ReadyRecord:
    """The worker started or stopped consuming."""

    ready: bool


@dataclass(frozen=True)
class WarmupSummary:
    """What loading and warming up the engine found: its time, the device and the batch sizes chosen."""

    seconds: float
    device: str
    engine_version: str
    versions: Mapping[str, str]
    tuned: Mapping[int, int]
    """Batch size per bucket edge."""
    records: Sequence[WarmupRecord] = field(default_factory=tuple)


ProcessRecord = (
    SegmentRecord | RetryRecord | DeadLetterRecord | InFlightRecord | ReadyRecord | WarmupSummary | MemoryStats
)
"""Device memory is reported as the backend's own ``MemoryStats``."""
