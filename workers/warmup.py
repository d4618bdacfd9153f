"""Warm-up: run every shape the worker will serve before it takes a message.

Returns the batch size to use per bucket edge. On a CPU with one
onnxruntime thread, batching is slower than one item at a time (padding and
no spare cores), so the CPU default is 1 per bucket; accelerators are tuned
by measurement (see ``workers/tuning.py`` when present).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.buckets import BucketPolicy
from shared.metrics import WorkerMetrics
from shared.settings import Settings
from workers.engines.base import Engine
from workers.telemetry import WorkerIdentity

log = logging.getLogger(__name__)


def warm_up(
    engine: Engine,
    device: Any,
    policy: BucketPolicy,
    settings: Settings,
    *,
    metrics: WorkerMetrics,
    identity: WorkerIdentity,
) -> dict[int, int]:
    sizes = (
        {edge: 1 for edge in policy.edges}
        if device.family == "cpu"
        else {edge: max(1, min(settings.max_batch_items, settings.max_batch_tokens // edge)) for edge in policy.edges}
    )
    started = time.perf_counter()
    records = engine.warmup([(edge, sizes[edge]) for edge in policy.edges])
    for record in records:
        log.info(
            "warm-up shape tokens=%d batch=%d: first %.3fs, steady %.3fs",
            record.tokens,
            record.batch,
            record.first_s,
            record.steady_s,
        )
    log.info("warm-up of %d shapes took %.1fs", len(records), time.perf_counter() - started)
    return sizes
