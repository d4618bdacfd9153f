"""The scheduler's series on the control plane's /metrics: dispatched and pending work, cycle, lease.

The dispatcher writes one summary of each cycle to Redis (``voxfarm:sched:stats``,
with a TTL) and counts dispatched audio seconds per tenant and priority
(``voxfarm:sched:dispatched``, inside its fenced push); any control replica's
exporter reads both, so the figures do not depend on which replica holds the
lease. Labels are tenant and priority only: never a job id.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import redis
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from shared.metrics import scheduler_families
from shared.redis_keys import SCHED_DISPATCHED, SCHED_STATS

CACHE_S = 5.0
MAX_SERIES = 1000


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _labels(field: str) -> list[str]:
    tenant, _, priority = field.partition("|")
    return [tenant, priority]


class SchedulerCollector(Collector):
    def __init__(self, client: redis.Redis, *, cache_s: float = CACHE_S, clock: Callable[[], float] = time.monotonic):
        self.client, self.cache_s, self.clock = client, cache_s, clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._stats: dict[str, str] = {}
        self._dispatched: dict[str, float] = {}

    def _read(self) -> None:
        with self._lock:
            if self.clock() - self._read_at < self.cache_s:
                return
            self._read_at = self.clock()
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.hgetall(SCHED_STATS)
                pipe.hgetall(SCHED_DISPATCHED)
                stats, dispatched = pipe.execute()
            except (redis.RedisError, OSError):
                self._stats, self._dispatched = {}, {}
                return
            self._stats = {_text(k): _text(v) for k, v in stats.items()}
            self._dispatched = {_text(k): float(v) for k, v in list(dispatched.items())[:MAX_SERIES]}

    def describe(self) -> Iterable[Metric]:
        return list(self._families(scraped=False))

    def collect(self) -> Iterable[Metric]:
        self._read()
        return list(self._families(scraped=True))

    def _families(self, *, scraped: bool) -> Iterator[Metric]:
        f = scheduler_families()
        if scraped:
            for field, seconds in self._dispatched.items():
                f.dispatched.add_metric(_labels(field), seconds)
            stats = self._stats
            for field, seconds in json.loads(stats.get("pending", "{}")).items():
                f.pending.add_metric(_labels(field), float(seconds))
            for field, seconds in json.loads(stats.get("starved", "{}")).items():
                f.starved.add_metric(_labels(field), float(seconds))
            if stats:
                f.cycle.add_metric([], float(stats.get("cycle_s", 0.0)))
                f.lease_holder.add_metric([stats.get("holder", "")], 1.0)
        yield from (f.dispatched, f.pending, f.starved, f.cycle, f.lease_holder)
