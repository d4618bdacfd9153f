"""Control-plane metrics: queue depth and queued work per bucket, in-flight messages, jobs, dead letters.

A custom collector reads Redis when Prometheus scrapes, at most once per
``cache_s`` seconds, so a fast scrape interval or several Prometheus
replicas cannot hammer the broker. Queues are kombu's Redis lists (LPUSH to
publish, BRPOP from the tail to consume, so the tail holds the oldest
message), found with SCAN and through kombu's binding sets, so an empty
queue is reported as 0 instead of vanishing. Priority steps live in sibling
lists (``shared.kombu_layout``) and are counted with their queue.

Queued work is estimated from the token count of the oldest messages of each
list (a bounded LRANGE sample), times ``SECONDS_PER_TOKEN``, extrapolated
by the list's length. Label values come from queue names, which the bucket
edges and the configured models bound; a queue name that is not a voxfarm
queue is skipped, and at most ``MAX_QUEUES`` queues are reported.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.buckets import (
    CONTROL_QUEUE,
    DEAD_LETTER_QUEUE,
    QUEUE_PREFIX,
    BucketPolicy,
    model_name,
    parse_queue_name,
)
from shared.engines import SECONDS_PER_TOKEN
from shared.errors import BadInputError
from shared.kombu_layout import BINDING_PREFIX, UNACKED_KEY, base_queue, bound_queue
from shared.ledger import JobState
from shared.metrics import control_plane_families
from shared.redis_keys import JOBS, job_key
from shared.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_MESSAGES = 16
"""Messages read from the tail (oldest end) of each list to estimate tokens per message."""
CACHE_S = 5.0
DISCOVER_S = 30.0
"""How often queues are looked for with SCAN; between two looks only known queues are read."""
MAX_QUEUES = 512
MAX_JOBS = 10_000
CONTROL = "control"
"""Model and bucket label value of the control queue."""
INTERACTIVE = "interactive"
ACTIVE_STATES = (
    JobState.PLANNING.value,
    JobState.QUEUED.value,
    JobState.RENDERING.value,
    JobState.PAUSED.value,
    JobState.ASSEMBLING.value,
)


@dataclass(frozen=True)
class QueueReading:
    model: str
    bucket: str
    messages: int
    work_s: float
    oldest_age_s: float


@dataclass(frozen=True)
class Reading:
    """One look at Redis: everything a scrape reports."""

    queues: list[QueueReading]
    unacked: int
    dead_letters: int
    jobs_active: dict[str, int]
    segments_remaining: int
    progress_age_s: float
    read_s: float


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def queue_labels(name: str) -> tuple[str, str] | None:
    """(model, bucket) label values of a queue, or None for anything that is not a voxfarm queue."""
    if name == CONTROL_QUEUE:
        return CONTROL, CONTROL
    if name == DEAD_LETTER_QUEUE:
        return None
    try:
        model, edge = parse_queue_name(name)
        engine, _, voice = model.partition(".")
        model_name(engine, voice)
    except (ValueError, BadInputError):
        return None
    return model, INTERACTIVE if edge is None else str(edge)


@dataclass(frozen=True)
class QueuedSegment:
    tokens: int
    enqueued_at: float
    length_scale: float

    @property
    def work_s(self) -> float:
        return self.tokens * self.length_scale * SECONDS_PER_TOKEN


def decode_segment(raw: bytes) -> QueuedSegment | None:
    """Tokens, enqueue time and speaking rate of a queued synthesis message; None for anything else.

    kombu's envelope is JSON whose ``body`` is base64 of Celery's JSON body
    ``[args, kwargs, embed]``; the segment is ``kwargs["segment"]``, or the
    segments of a work unit ``kwargs["unit"]`` (their tokens add up).
    """
    try:
        envelope = json.loads(raw)
        body: Any = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        decoded = json.loads(body)
        kwargs = decoded[1] if isinstance(decoded, list) else decoded.get("kwargs", {})
        segments = kwargs["unit"] if "unit" in kwargs else [kwargs["segment"]]
        params = segments[0].get("params") or {}
        tokens = sum(len(segment["ids"]) for segment in segments)
        return QueuedSegment(tokens, float(segments[0]["enqueued_at"]), float(params.get("length_scale", 1.0)))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error):
        return None


@dataclass
class RedisReader:
    """Reads queue, ledger and dead-letter figures from the broker's Redis."""

    client: redis.Redis
    known: set[str] = field(default_factory=set)
    """Queue names always reported (0 when empty): the configured model's buckets and the control queue."""
    sample: int = SAMPLE_MESSAGES
    discover_s: float = DISCOVER_S
    clock: Callable[[], float] = time.time
    _lists: dict[str, set[str]] = field(default_factory=dict)
    _discovered_at: float = float("-inf")

    def read(self) -> Reading:
        started = time.perf_counter()
        now = self.clock()
        if now - self._discovered_at >= self.discover_s:
            self._discover()
            self._discovered_at = now
        queues = self._queues(now)
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen(UNACKED_KEY)
        pipe.llen(DEAD_LETTER_QUEUE)
        unacked, dead = pipe.execute()
        active, remaining, age = self._jobs(now)
        return Reading(queues, int(unacked), int(dead), active, remaining, age, time.perf_counter() - started)

    def _discover(self) -> None:
        """Every voxfarm queue: lists that hold messages now, and queues kombu has bindings for."""
        lists: dict[str, set[str]] = {name: {name} for name in self.known}
        for key in self.client.scan_iter(match=f"{QUEUE_PREFIX}.*", count=1000, _type="list"):
            name = _text(key)
            base = base_queue(name)
            if base in lists or (len(lists) < MAX_QUEUES and queue_labels(base) is not None):
                lists.setdefault(base, set()).add(name)
        for key in self.client.scan_iter(match=f"{BINDING_PREFIX}{QUEUE_PREFIX}.*", count=1000):
            for member in self.client.smembers(key):
                queue = bound_queue(_text(member))
                if queue not in lists and len(lists) < MAX_QUEUES and queue_labels(queue) is not None:
                    lists[queue] = {queue}
        for base, names in self._lists.items():  # a queue seen once stays reported (0 when drained)
            lists.setdefault(base, set()).update(names)
        self._lists = dict(sorted(lists.items())[:MAX_QUEUES])

    def _queues(self, now: float) -> list[QueueReading]:
        order = [(base, name) for base, names in self._lists.items() for name in sorted(names)]
        pipe = self.client.pipeline(transaction=False)
        for _, name in order:
            pipe.llen(name)
            pipe.lrange(name, -self.sample, -1)
        replies = pipe.execute()
        totals: dict[str, list[float]] = {}
        for (base, _), length, sample in zip(order, replies[::2], replies[1::2], strict=True):
            messages, work, oldest = totals.setdefault(base, [0, 0.0, 0.0])
            segments = [decode_segment(raw) for raw in sample]
            if sample:
                work += sum(s.work_s for s in segments if s is not None) / len(sample) * length
            if segments and segments[-1] is not None:
                oldest = max(oldest, now - segments[-1].enqueued_at)
            totals[base] = [messages + length, work, oldest]
        readings = []
        for base, (messages, work, oldest) in totals.items():
            labels = queue_labels(base)
            if labels is not None:
                readings.append(QueueReading(*labels, int(messages), work, max(oldest, 0.0)))
        return readings

    def _jobs(self, now: float) -> tuple[dict[str, int], int, float]:
        jobs = [_text(key) for key in itertools.islice(self.client.sscan_iter(JOBS, count=1000), MAX_JOBS)]
        pipe = self.client.pipeline(transaction=False)
        for job in jobs:
            pipe.hmget(job_key(job, "meta"), "state", "total", "updated_at")
            pipe.scard(job_key(job, "done"))
        replies = pipe.execute()
        active = dict.fromkeys(ACTIVE_STATES, 0)
        remaining, age = 0, 0.0
        for (state, total, updated), done in zip(replies[::2], replies[1::2], strict=True):
            name = state.decode() if state else ""
            if name not in active:
                continue
            active[name] += 1
            if name in (JobState.QUEUED.value, JobState.RENDERING.value):  # a paused job is expected to wait
                remaining += max(int(total or 0) - int(done), 0)
            if name == JobState.RENDERING.value:
                age = max(age, now - float(updated or now))
        return active, remaining, age


class ControlPlaneCollector(Collector):
    """Collects the control plane's series from one cached ``Reading``."""

    def __init__(self, reader: RedisReader, *, cache_s: float = CACHE_S, clock: Callable[[], float] = time.monotonic):
        self.reader = reader
        self.cache_s = cache_s
        self.clock = clock
        self._lock = threading.Lock()
        self._reading: Reading | None = None
        self._read_at = float("-inf")
        self._up = False
        self.errors = 0

    def reading(self) -> Reading | None:
        """The last reading, refreshed when older than ``cache_s``; None while Redis cannot be read."""
        with self._lock:
            if self.clock() - self._read_at >= self.cache_s:
                self._read_at = self.clock()
                try:
                    self._reading, self._up = self.reader.read(), True
                except (redis.RedisError, OSError) as exc:
                    self._reading, self._up = None, False
                    self.errors += 1
                    log.warning("cannot read queue and job figures from Redis: %s", exc)
            return self._reading

    def describe(self) -> Iterable[Metric]:
        return list(self._families(None, scraped=False))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self.reading(), scraped=True))

    def _families(self, reading: Reading | None, *, scraped: bool) -> Iterator[Metric]:
        f = control_plane_families()
        if scraped:
            f.broker_up.add_metric([], 1.0 if self._up else 0.0)
            f.read_errors.add_metric([], float(self.errors))
        yield f.broker_up
        yield f.read_errors
        if reading is not None:
            for queue in reading.queues:
                labels = [queue.model, queue.bucket]
                f.queue_depth.add_metric(labels, float(queue.messages))
                if queue.bucket != CONTROL:
                    f.queue_work.add_metric(labels, queue.work_s)
                    f.queue_oldest_age.add_metric(labels, queue.oldest_age_s)
            f.unacked.add_metric([], float(reading.unacked))
            f.dead_letters.add_metric([], float(reading.dead_letters))
            for state, count in reading.jobs_active.items():
                f.jobs_active.add_metric([state], float(count))
            f.segments_remaining.add_metric([], float(reading.segments_remaining))
            f.progress_age.add_metric([], reading.progress_age_s)
            f.read_seconds.add_metric([], reading.read_s)
        yield from (
            f.queue_depth,
            f.queue_work,
            f.queue_oldest_age,
            f.unacked,
            f.dead_letters,
            f.jobs_active,
            f.segments_remaining,
            f.progress_age,
            f.read_seconds,
        )


def configured_queues(settings: Settings) -> set[str]:
    """The queues of the configured default model and the control queue: reported even before first use."""
    model = model_name(settings.submit_engine, settings.voice)
    policy = BucketPolicy.from_edges(settings.bucket_edges)
    return {CONTROL_QUEUE, f"{QUEUE_PREFIX}.{model}.{INTERACTIVE}", *policy.queues(model)}


def register_exporter(
    registry: CollectorRegistry, settings: Settings, *, cache_s: float = CACHE_S
) -> ControlPlaneCollector:
    """Add the control-plane collector, reading the broker's Redis, to ``registry``."""
    # One quick retry: a scrape must answer within Prometheus's scrape timeout even when Redis is gone.
    client = redis.Redis.from_url(
        settings.broker_url,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 1),
        **settings.redis_ssl_options,
    )
    collector = ControlPlaneCollector(RedisReader(client, known=configured_queues(settings)), cache_s=cache_s)
    registry.register(collector)
    from producer.scheduler_metrics import SchedulerCollector

    registry.register(SchedulerCollector(client, cache_s=cache_s))
    return collector


class ExporterServer:
    """The control plane's /metrics endpoint, served from a background thread."""

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int) -> None:
        self.registry = registry
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.host = host
        self.port = int(self._server.server_port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def start_exporter(settings: Settings, *, port: int, host: str | None = None) -> ExporterServer:
    """Serve the control-plane metrics on ``host:port`` (0 picks a free port)."""
    registry = CollectorRegistry()
    register_exporter(registry, settings)
    server = ExporterServer(registry, host=host or settings.metrics_host, port=port)
    log.info("control-plane metrics on http://%s:%d/metrics", server.host, server.port)
    return server
