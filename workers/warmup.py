"""Warm-up: run every shape the worker will serve before it takes a message, and pick batch sizes.

Batch sizes per bucket come from ``Settings.batch_tuning``: measured on the
card (and cached for every worker with the same card), the item cap within
the token budget, or one item on a CPU, where batching was measured slower.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shared.buckets import BucketPolicy
from shared.settings import Settings
from workers.devices.base import DeviceBackend
from workers.engines.base import Engine, WarmupRecord
from workers.tuning import Measurement, cache_path, tune

log = logging.getLogger(__name__)


class Card(Protocol):
    """The card being warmed up (an ``OpenedDevice``)."""

    @property
    def family(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def backend(self) -> DeviceBackend: ...


@dataclass
class WarmupResult:
    sizes: dict[int, int]
    """Batch size per bucket edge: what the card computes at once."""
    records: list[WarmupRecord] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    tuned_from_cache: bool = False
    seconds: float = 0.0
    call_sizes: dict[int, int] = field(default_factory=dict)
    """Items per engine call: ``sizes``, or a multiple of them where the engine sorts by frames."""


def budget_sizes(policy: BucketPolicy, settings: Settings) -> dict[int, int]:
    """The largest batch per edge that the item cap and the padded-token budget allow."""
    return {edge: max(1, min(settings.max_batch_items, settings.max_batch_tokens // edge)) for edge in policy.edges}


def warm_up(
    engine: Engine, card: Card, policy: BucketPolicy, settings: Settings, *, voice_checksum: str, cache_dir: Path
) -> WarmupResult:
    started = time.perf_counter()
    mode: str = settings.batch_tuning
    if mode == "auto":
        mode = "measure" if card.family != "cpu" else "one"
    limits = budget_sizes(policy, settings)
    result = WarmupResult(sizes={edge: 1 for edge in policy.edges} if mode == "one" else dict(limits))
    if mode == "measure":
        backend = card.backend
        free = _free_memory(backend)
        tuned = tune(
            engine,
            limits,
            cache_file=cache_path(
                cache_dir, device_name=card.name, engine=engine, voice_checksum=voice_checksum, limits=limits
            ),
            free_memory=free,
            peak_memory=lambda: _peak_memory(backend),
            reset_peak=backend.reset_peak_memory,
        )
        result.sizes, result.measurements, result.tuned_from_cache = tuned.sizes, tuned.measurements, tuned.from_cache
    result.records = engine.warmup([(edge, result.sizes[edge]) for edge in policy.edges])
    result.call_sizes = dict(result.sizes)
    factor = settings.frame_sort_batches
    if engine.sorts_by_frames and factor > 1 and max(result.sizes.values()) > 1:
        result.call_sizes = {edge: size * factor for edge, size in result.sizes.items()}
        result.records += engine.sort_by_frames(result.sizes, result.call_sizes)
        log.info(
            "engine calls of up to %s items, decoded in frame-sorted batches of %s", result.call_sizes, result.sizes
        )
    for record in result.records:
        log.info(
            "warm-up shape tokens=%d batch=%d: first %.3fs, steady %.3fs",
            record.tokens,
            record.batch,
            record.first_s,
            record.steady_s,
        )
    result.seconds = time.perf_counter() - started
    log.info("warm-up of %d shapes took %.1fs; batch sizes %s", len(result.records), result.seconds, result.sizes)
    return result


def _free_memory(backend: DeviceBackend) -> int | None:
    try:
        return backend.memory().free_bytes
    except Exception:  # noqa: BLE001 - a card that cannot report memory is tuned without a memory bound
        return None


def _peak_memory(backend: DeviceBackend) -> int | None:
    try:
        return backend.memory().peak_bytes
    except Exception:  # noqa: BLE001
        return None
