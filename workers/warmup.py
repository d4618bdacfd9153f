"""Warm-up: run every shape the worker will serve before it takes a message, and pick batch sizes.

Returns the batch size to use per bucket edge (see ``Settings.batch_tuning``).
"""

from __future__ import annotations

import logging
import time

from shared.buckets import BucketPolicy
from shared.metrics import WorkerMetrics
from shared.settings import Settings
from workers.engines.base import Engine
from workers.telemetry import WorkerIdentity

log = logging.getLogger(__name__)


def budget_sizes(policy: BucketPolicy, settings: Settings) -> dict[int, int]:
    """The largest batch per edge that the item cap and the padded-token budget allow."""
    return {edge: max(1, min(settings.max_batch_items, settings.max_batch_tokens // edge)) for edge in policy.edges}


def warm_up(
    engine: Engine,
    family: str,
    policy: BucketPolicy,
    settings: Settings,
    *,
    metrics: WorkerMetrics,
    identity: WorkerIdentity,
) -> dict[int, int]:
    mode = settings.batch_tuning
    if mode == "auto":
        mode = "measure" if family != "cpu" else "one"
    sizes = {edge: 1 for edge in policy.edges} if mode == "one" else budget_sizes(policy, settings)
    started = time.perf_counter()
    records = engine.warmup([(edge, sizes[edge]) for edge in policy.edges])
    for record in records:
        log.info(
            "warm-up shape tokens=%d batch=%d: first %.3fs, steady %.3fs",
            record.tokens, record.batch, record.first_s, record.steady_s,
        )
    log.info("warm-up of %d shapes took %.1fs", len(records), time.perf_counter() - started)
    return sizes
