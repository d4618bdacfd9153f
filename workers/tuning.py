"""Batch-size auto-tuning, measured on the card itself and cached per device model and engine.

For each bucket edge the tuner times candidate batch sizes (1, 2, 4, ...)
within the item cap, the padded-token budget and the memory the card had
free at start, and keeps the size with the best throughput, preferring the
smaller one unless a larger one is clearly faster (latency is worth
something too). The result is written to the cache directory under a name
derived from the device model, engine, engine version, voice weights and
budgets, so every other worker with the same card starts tuned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.errors import DeviceOutOfMemoryError
from workers.engines.base import SPEECH_LIKE_IDS, Engine, EngineRequest

log = logging.getLogger(__name__)

MEMORY_HEADROOM = 0.9
"""Never use more than this fraction of the memory that was free at start."""
CLEARLY_FASTER = 1.05
"""A larger batch must beat the best so far by this factor to be chosen."""


@dataclass(frozen=True)
class Measurement:
    edge: int
    batch: int
    seconds_per_call: float
    items_per_s: float
    peak_bytes: int | None


@dataclass(frozen=True)
class TuningResult:
    sizes: dict[int, int]
    measurements: list[Measurement]
    from_cache: bool


def synthetic_request(tokens: int) -> EngineRequest:
    """A speech-like token sequence of exactly ``tokens`` ids (Piper layout: BOS, phoneme/pad pairs, EOS)."""
    body = (list(SPEECH_LIKE_IDS) * (tokens // len(SPEECH_LIKE_IDS) + 1))[: max(tokens - 2, 0)]
    return EngineRequest(key="0" * 64, ids=[1, *body, 2][:tokens])


def candidates(limit: int) -> list[int]:
    sizes, size = [], 1
    while size <= limit:
        sizes.append(size)
        size *= 2
    if sizes[-1] != limit:
        sizes.append(limit)
    return sizes


def cache_path(
    cache_dir: Path, *, device_name: str, engine: Engine, voice_checksum: str, limits: dict[int, int]
) -> Path:
    fingerprint = json.dumps(
        {
            "device": device_name,
            "engine": engine.name,
            "version": engine.version,
            "voice": voice_checksum,
            "limits": limits,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return cache_dir / "tuning" / f"{engine.name}-{digest}.json"


def tune(
    engine: Engine,
    limits: dict[int, int],
    *,
    cache_file: Path | None,
    free_memory: int | None,
    peak_memory: Callable[[], int | None] = lambda: None,
    reset_peak: Callable[[], None] = lambda: None,
    min_seconds: float = 0.3,
    clock: Callable[[], float] = time.perf_counter,
) -> TuningResult:
    """Best batch size per edge, from the cache when another worker already measured this card.

    ``clock`` times the calls; tests pass a simulated card's clock so the choice does not depend on the load.
    """
    if cache_file is not None and cache_file.is_file():
        try:
            stored = json.loads(cache_file.read_text())
            cached = {int(edge): int(size) for edge, size in stored["sizes"].items()}
            if set(cached) == set(limits):
                log.info("batch sizes from the tuning cache %s: %s", cache_file.name, cached)
                return TuningResult(cached, [], True)
        except (OSError, ValueError, KeyError):
            log.warning("ignoring an unreadable tuning cache %s", cache_file)
    measurements: list[Measurement] = []
    sizes: dict[int, int] = {}
    for edge, limit in sorted(limits.items()):
        sizes[edge] = _tune_edge(
            engine,
            edge,
            candidates(limit),
            measurements=measurements,
            free_memory=free_memory,
            peak_memory=peak_memory,
            reset_peak=reset_peak,
            min_seconds=min_seconds,
            clock=clock,
        )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sizes": sizes, "measurements": [asdict(m) for m in measurements]}, indent=1))
        tmp.replace(cache_file)
    return TuningResult(sizes, measurements, False)


def _tune_edge(
    engine: Engine,
    edge: int,
    sizes: Sequence[int],
    *,
    measurements: list[Measurement],
    free_memory: int | None,
    peak_memory: Callable[[], int | None],
    reset_peak: Callable[[], None],
    min_seconds: float,
    clock: Callable[[], float],
) -> int:
    best_size, best_rate = 1, 0.0
    for size in sizes:
        batch = [synthetic_request(edge)] * size
        reset_peak()
        try:
            engine.synthesize(batch, edge)  # first call may compile this shape
            calls, started = 0, clock()
            while calls < 2 or clock() - started < min_seconds:
                engine.synthesize(batch, edge)
                calls += 1
            per_call = (clock() - started) / calls
        except DeviceOutOfMemoryError:
            log.info("bucket %d: batch %d does not fit in device memory", edge, size)
            break
        peak = peak_memory()
        rate = size / per_call
        measurements.append(Measurement(edge, size, per_call, rate, peak))
        log.info("bucket %d batch %d: %.1f items/s (%.3fs per call)", edge, size, rate, per_call)
        if rate > best_rate * CLEARLY_FASTER:
            best_size, best_rate = size, rate
        if free_memory and peak and peak > MEMORY_HEADROOM * free_memory:
            log.info("bucket %d: batch %d used %.0f%% of free memory; stopping", edge, size, 100 * peak / free_memory)
            break
        if rate < best_rate / CLEARLY_FASTER:
            break  # throughput is falling: larger batches will not help
    return best_size
