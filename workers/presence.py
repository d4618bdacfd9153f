"""What a worker tells the dispatcher, and what it asks of it.

Presence: every few seconds a worker publishes its model and its items per
engine call per bucket, with a TTL, so the dispatcher sizes each queue's
window to the workers that are actually there (a dead worker drops out
when its TTL runs out).

Job states: before it synthesises a segment, a worker checks its job's
state, cached for a second (so about one Redis read per job per batch): a
cancelled job's segment is acknowledged without synthesis, a paused job's
is acknowledged and handed back to the dispatcher (its ``sent`` mark is
cleared) for when the job is resumed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import redis

from shared.redis_keys import SCHED_CONSUMERS, consumer_key, job_key

log = logging.getLogger(__name__)

PRESENCE_TTL_S = 30
PRESENCE_EVERY_S = 10.0
STATE_CACHE_S = 1.0


class Presence:
    def __init__(self, client: redis.Redis, hostname: str, model: str, calls: Mapping[int, int]) -> None:
        self.client, self.hostname = client, hostname
        self.document = json.dumps({"model": model, "calls": {str(e): int(n) for e, n in calls.items()}})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="voxfarm-presence", daemon=True)

    def publish(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(consumer_key(self.hostname), self.document, ex=PRESENCE_TTL_S)
        pipe.zadd(SCHED_CONSUMERS, {self.hostname: time.time() + PRESENCE_TTL_S})
        pipe.execute()

    def start(self) -> None:
        try:
            self.publish()
        except redis.RedisError as exc:
            log.warning("could not publish worker presence: %s", exc)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(PRESENCE_EVERY_S):
            try:
                self.publish()
            except redis.RedisError as exc:
                log.warning("could not publish worker presence: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(consumer_key(self.hostname))
            pipe.zrem(SCHED_CONSUMERS, self.hostname)
            pipe.execute()
        except redis.RedisError:
            pass  # the TTL removes it


@dataclass
class JobStates:
    """Job state by id, read from the ledger at most once per ``ttl_s`` per job."""

    client: redis.Redis
    ttl_s: float = STATE_CACHE_S
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self, job: str) -> str:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(job)
            if cached is not None and now - cached[1] < self.ttl_s:
                return cached[0]
        try:
            raw = self.client.hget(job_key(job, "meta"), "state")
        except redis.RedisError:
            return ""  # unknown: render as before rather than drop work
        state = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[job] = (state, now)
        return state
