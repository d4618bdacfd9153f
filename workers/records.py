"""What a worker process reports about itself and its messages, as plain records.

The runner reports batches, uploads and failures (``workers.runner``); the
message handler and the process report these. ``workers.telemetry`` turns
every record into Prometheus series, so no other module writes a metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from workers.devices.base import MemoryStats
from workers.engines.base import WarmupRecord


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
