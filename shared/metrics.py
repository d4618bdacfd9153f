"""Prometheus metric definitions of every voxfarm process: names, units and the only labels allowed.

Labels have bounded cardinality by construction: engine, voice, device
family, card, bucket edge, stage, status, reason, kind, operation, model,
state. Never a job id, a key or text. Each process builds its metrics on its
own registry and serves them on one port: a worker (``WorkerMetrics``, fed by
``workers.telemetry``), the pool that supervises workers (``PoolMetrics``) and
the control plane's queue and job exporter (``ControlPlaneFamilies``, filled
by ``producer.exporter`` at each scrape). ``docs/observability.md`` lists
every series.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

WORKER_LABELS = ("engine", "voice", "family", "card")
BUCKET_LABELS = (*WORKER_LABELS, "bucket")

RETRY_REASONS = ("engine", "storage", "broker", "timeout")
"""Why a segment went back for another attempt (``reason`` of voxfarm_retries_total)."""
DEAD_LETTER_REASONS = ("invalid", "bad_input", "retries_exhausted", "crashes_workers")
"""Why a segment was given up (``reason`` of voxfarm_dead_letters_total)."""
FAILURE_KINDS = ("poison", "oom", "time_limit", "device", "quality")
"""How an engine call failed (``kind`` of voxfarm_batch_failures_total); quality: a take failed the quality gate."""
SEGMENT_STATUSES = ("rendered", "exists")
"""``rendered``: synthesised and stored; ``exists``: its audio was already in storage."""
STORAGE_OPERATIONS = ("put",)
MEMORY_KINDS = ("used", "reserved", "free", "total", "peak")
"""used: allocated by this process (resident size on CPU); reserved: held by the framework's caching
allocator, where the device layer reports it; free and total: the card's (the host's on CPU); peak: the most
allocated since start (or the last reset)."""

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_WAIT = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600)
_RATIO = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)
_SIZES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
_FRACTION = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


@dataclass
class WorkerMetrics:
    """The series of one worker process; ``workers.telemetry`` feeds them from the runner's records."""

    registry: CollectorRegistry
    segments: Counter
    audio_seconds: Counter
    characters: Counter
    batches: Counter
    queue_wait: Histogram
    batch_size: Histogram
    padding_efficiency: Histogram
    stage_seconds: Histogram
    real_time_factor: Histogram
    warmup_seconds: Gauge
    first_batch_seconds: Gauge
    compile_seconds: Gauge
    compile_cache_hits: Counter
    compile_cache_misses: Counter
    device_memory: Gauge
    retries: Counter
    dead_letters: Counter
    failures: Counter
    storage_seconds: Histogram
    storage_errors: Counter
    storage_bytes: Counter
    ready: Gauge
    tuned_batch_size: Gauge
    inflight: Gauge
    info: Info


def worker_metrics(registry: CollectorRegistry | None = None) -> WorkerMetrics:
    """The metrics of one worker process (one card).

    The client library's ``*_created`` series are turned off (for the whole
    process): they double the series count and no dashboard or rule reads them.
    """
    disable_created_metrics()
    reg = registry or CollectorRegistry()
    return WorkerMetrics(
        registry=reg,
        segments=Counter(
            "voxfarm_segments",
            "Segments finished, by status: rendered (synthesised and stored) or exists (already in storage).",
            [*BUCKET_LABELS, "status"],
            registry=reg,
        ),
        audio_seconds=Counter("voxfarm_audio_seconds", "Seconds of audio synthesised.", WORKER_LABELS, registry=reg),
        characters=Counter(
            "voxfarm_characters",
            "Characters of text synthesised (rate() gives characters per second).",
            WORKER_LABELS,
            registry=reg,
        ),
        batches=Counter(
            "voxfarm_batches", "Engine calls, by why the batch was released.", [*BUCKET_LABELS, "reason"], registry=reg
        ),
        queue_wait=Histogram(
            "voxfarm_queue_wait_seconds",
            "From enqueue to the start of the segment's batch.",
            BUCKET_LABELS,
            buckets=_WAIT,
            registry=reg,
        ),
        batch_size=Histogram(
            "voxfarm_batch_size_items", "Items per engine call.", BUCKET_LABELS, buckets=_SIZES, registry=reg
        ),
        padding_efficiency=Histogram(
            "voxfarm_batch_padding_efficiency_ratio",
            "Useful / computed tokens of a batch (1 = no padding; the padding ratio is 1 minus this).",
            BUCKET_LABELS,
            buckets=_FRACTION,
            registry=reg,
        ),
        stage_seconds=Histogram(
            "voxfarm_stage_seconds",
            "Seconds per stage: engine stages per batch (synthesis, or encoder, duration, flow, vocoder), "
            "encode and upload per segment.",
            [*WORKER_LABELS, "stage"],
            buckets=_SECONDS,
            registry=reg,
        ),
        real_time_factor=Histogram(
            "voxfarm_real_time_factor_ratio",
            "Compute seconds per second of audio, per batch (lower is faster).",
            BUCKET_LABELS,
            buckets=_RATIO,
            registry=reg,
        ),
        warmup_seconds=Gauge(
            "voxfarm_warmup_seconds", "Seconds spent loading, compiling and warming up.", WORKER_LABELS, registry=reg
        ),
        first_batch_seconds=Gauge(
            "voxfarm_first_batch_seconds",
            "Compute seconds of the first real batch after warm-up (a slow one means warm-up missed a shape).",
            WORKER_LABELS,
            registry=reg,
        ),
        compile_seconds=Gauge(
            "voxfarm_compile_seconds",
            "Warm-up seconds spent compiling: first minus steady call, summed over compiled shapes.",
            WORKER_LABELS,
            registry=reg,
        ),
        compile_cache_hits=Counter(
            "voxfarm_compile_cache_hits",
            "Compiled warm-up shapes whose first call was about as fast as a steady one (graph from the cache).",
            WORKER_LABELS,
            registry=reg,
        ),
        compile_cache_misses=Counter(
            "voxfarm_compile_cache_misses",
            "Compiled warm-up shapes whose first call paid for compiling.",
            WORKER_LABELS,
            registry=reg,
        ),
        device_memory=Gauge(
            "voxfarm_device_memory_bytes",
            "Device memory by kind: used (by this process), reserved, free, total, peak.",
            [*WORKER_LABELS, "kind"],
            registry=reg,
        ),
        retries=Counter(
            "voxfarm_retries", "Segments sent back for another attempt.", [*WORKER_LABELS, "reason"], registry=reg
        ),
        dead_letters=Counter(
            "voxfarm_dead_letters",
            "Segments given up and sent to voxfarm.dead.",
            [*WORKER_LABELS, "reason"],
            registry=reg,
        ),
        failures=Counter(
            "voxfarm_batch_failures",
            "Failed engine calls by kind (poison, oom, time_limit, device) and takes that failed the quality gate.",
            [*WORKER_LABELS, "kind"],
            registry=reg,
        ),
        storage_seconds=Histogram(
            "voxfarm_storage_request_seconds",
            "Latency of storage writes.",
            [*WORKER_LABELS, "operation"],
            buckets=_SECONDS,
            registry=reg,
        ),
        storage_errors=Counter(
            "voxfarm_storage_errors", "Failed storage requests.", [*WORKER_LABELS, "operation"], registry=reg
        ),
        storage_bytes=Counter(
            "voxfarm_storage_written_bytes", "Bytes of audio written to storage.", WORKER_LABELS, registry=reg
        ),
        ready=Gauge(
            "voxfarm_worker_ready", "1 once warm-up finished and the worker consumes.", WORKER_LABELS, registry=reg
        ),
        tuned_batch_size=Gauge(
            "voxfarm_tuned_batch_size_items", "Batch size chosen at warm-up per bucket.", BUCKET_LABELS, registry=reg
        ),
        inflight=Gauge(
            "voxfarm_inflight_segments", "Segments received and not yet stored.", WORKER_LABELS, registry=reg
        ),
        info=Info(
            "voxfarm_worker",
            "Device name, runtime (torch, driver/toolkit) and engine versions of this worker.",
            WORKER_LABELS,
            registry=reg,
        ),
    )


@dataclass
class PoolMetrics:
    """The series of the pool process that supervises one worker per card."""

    registry: CollectorRegistry
    restarts: Counter
    workers_up: Gauge


def pool_metrics(registry: CollectorRegistry | None = None) -> PoolMetrics:
    reg = registry or CollectorRegistry()
    return PoolMetrics(
        registry=reg,
        restarts=Counter("voxfarm_pool_restarts", "Worker processes restarted by the pool.", ["device"], registry=reg),
        workers_up=Gauge("voxfarm_pool_workers_up", "Worker processes alive.", registry=reg),
    )


QUEUE_LABELS = ["model", "bucket"]


@dataclass
class ControlPlaneFamilies:
    """The control plane's series, made fresh for each scrape from one reading of Redis."""

    broker_up: GaugeMetricFamily
    read_errors: CounterMetricFamily
    queue_depth: GaugeMetricFamily
    queue_work: GaugeMetricFamily
    queue_oldest_age: GaugeMetricFamily
    unacked: GaugeMetricFamily
    dead_letters: GaugeMetricFamily
    jobs_active: GaugeMetricFamily
    segments_remaining: GaugeMetricFamily
    progress_age: GaugeMetricFamily
    read_seconds: GaugeMetricFamily


def control_plane_families() -> ControlPlaneFamilies:
    return ControlPlaneFamilies(
        broker_up=GaugeMetricFamily("voxfarm_broker_up", "1 when the exporter's last read of Redis succeeded."),
        read_errors=CounterMetricFamily("voxfarm_exporter_read_errors", "Failed reads of Redis."),
        queue_depth=GaugeMetricFamily(
            "voxfarm_queue_depth_messages", "Messages waiting in a queue (all priority steps).", labels=QUEUE_LABELS
        ),
        queue_work=GaugeMetricFamily(
            "voxfarm_queue_work_seconds",
            "Estimated seconds of audio the waiting messages of a queue will make.",
            labels=QUEUE_LABELS,
        ),
        queue_oldest_age=GaugeMetricFamily(
            "voxfarm_queue_oldest_age_seconds",
            "Age of the oldest waiting segment of a queue (0 when empty).",
            labels=QUEUE_LABELS,
        ),
        unacked=GaugeMetricFamily(
            "voxfarm_unacked_messages", "Messages delivered to a worker and not yet acknowledged (in flight)."
        ),
        dead_letters=GaugeMetricFamily(
            "voxfarm_dead_letter_queue_messages", "Entries in the dead-letter list voxfarm.dead."
        ),
        jobs_active=GaugeMetricFamily(
            "voxfarm_jobs_active", "Jobs queued, rendering, paused or assembling.", labels=["state"]
        ),
        segments_remaining=GaugeMetricFamily(
            "voxfarm_segments_remaining", "Segments of queued and rendering jobs not yet stored."
        ),
        progress_age=GaugeMetricFamily(
            "voxfarm_job_progress_age_seconds",
            "Seconds since the rendering job that progressed least recently stored a segment (0 when none renders).",
        ),
        read_seconds=GaugeMetricFamily("voxfarm_exporter_read_seconds", "Seconds the last read of Redis took."),
    )


SCHEDULER_LABELS = ["tenant", "priority"]


@dataclass
class SchedulerFamilies:
    """The dispatcher's series, made fresh for each scrape from its summary in Redis; never a job id."""

    dispatched: CounterMetricFamily
    pending: GaugeMetricFamily
    starved: GaugeMetricFamily
    cycle: GaugeMetricFamily
    lease_holder: GaugeMetricFamily


def scheduler_families() -> SchedulerFamilies:
    return SchedulerFamilies(
        dispatched=CounterMetricFamily(
            "voxfarm_scheduler_dispatched_seconds",
            "Estimated seconds of audio the dispatcher has put into the queues.",
            labels=SCHEDULER_LABELS,
        ),
        pending=GaugeMetricFamily(
            "voxfarm_scheduler_pending_seconds",
            "Estimated seconds of audio of registered jobs not yet dispatched (paused jobs excluded).",
            labels=SCHEDULER_LABELS,
        ),
        starved=GaugeMetricFamily(
            "voxfarm_scheduler_starved_seconds",
            "Longest time a job with work waiting has gone without any of it being dispatched.",
            labels=SCHEDULER_LABELS,
        ),
        cycle=GaugeMetricFamily("voxfarm_dispatcher_cycle_seconds", "Seconds the dispatcher's last cycle took."),
        lease_holder=GaugeMetricFamily(
            "voxfarm_dispatcher_lease_holder", "1 for the replica holding the dispatch lease.", labels=["holder"]
        ),
    )
