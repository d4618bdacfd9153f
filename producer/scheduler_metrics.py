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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.scheduler_keys import DISPATCHED_KEY, STATS_KEY

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
                pipe.hgetall(STATS_KEY)
                pipe.hgetall(DISPATCHED_KEY)
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
        labels = ["tenant", "priority"]
        dispatched = CounterMetricFamily(
            "voxfarm_scheduler_dispatched_seconds",
            "Estimated seconds of audio the dispatcher has put into the queues.",
            labels=labels,
        )
        pending = GaugeMetricFamily(
            "voxfarm_scheduler_pending_seconds",
            "Estimated seconds of audio of registered jobs not yet dispatched (paused jobs excluded).",
            labels=labels,
        )
        starved = GaugeMetricFamily(
            "voxfarm_scheduler_starved_seconds",
            "Longest time a job with work waiting has gone without any of it being dispatched.",
            labels=labels,
        )
        cycle = GaugeMetricFamily("voxfarm_dispatcher_cycle_seconds", "Seconds the dispatcher's last cycle took.")
        lease = GaugeMetricFamily(
            "voxfarm_dispatcher_lease_holder",
            "1 for the control replica holding the dispatch lease.",
            labels=["holder"],
        )
        if scraped:
            for field, seconds in self._dispatched.items():
                dispatched.add_metric(_labels(field), seconds)
            stats = self._stats
            for field, seconds in json.loads(stats.get("pending", "{}")).items():
                pending.add_metric(_labels(field), float(seconds))
            for field, seconds in json.loads(stats.get("starved", "{}")).items():
                starved.add_metric(_labels(field), float(seconds))
            if stats:
                cycle.add_metric([], float(stats.get("cycle_s", 0.0)))
                lease.add_metric([stats.get("holder", "")], 1.0)
        yield from (dispatched, pending, starved, cycle, lease)
