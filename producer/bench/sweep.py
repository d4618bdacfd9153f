"""The batch sweep: throughput and latency per batch size per bucket on the local device."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from workers.engines.base import Engine
from workers.tuning import synthetic_request

log = logging.getLogger(__name__)


def batch_sweep(engine: Engine, edges: Sequence[int], sizes: Sequence[int], min_seconds: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for edge in edges:
        for size in sizes:
            batch = [synthetic_request(edge)] * size
            engine.synthesize(batch, edge)
            calls, audio_s, started = 0, 0.0, time.perf_counter()
            while calls < 2 or time.perf_counter() - started < min_seconds:
                output = engine.synthesize(batch, edge)
                audio_s += sum(len(a) for a in output.audio) / engine.sample_rate
                calls += 1
            elapsed = time.perf_counter() - started
            rows.append(
                {
                    "engine": engine.name,
                    "bucket": edge,
                    "batch": size,
                    "items_per_s": round(size * calls / elapsed, 3),
                    "audio_s_per_s": round(audio_s / elapsed, 3),
                    "latency_s": round(elapsed / calls, 4),
                }
            )
            log.info("sweep bucket %d batch %d: %.1f items/s", edge, size, size * calls / elapsed)
    for row in rows:
        base = next(r for r in rows if r["bucket"] == row["bucket"] and r["batch"] == min(sizes))
        row["speedup_vs_batch1"] = round(row["items_per_s"] / base["items_per_s"], 3)
    return rows
