"""What the runner reports: one plain record per batch, upload and failure.

The runner, the upload pipeline and the quality gate's retakes hand these to
an observer; ``workers.telemetry`` turns them into Prometheus series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


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
