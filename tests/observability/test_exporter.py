"""The control-plane exporter against a private real Redis, with messages published by Celery itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from producer.embedded import LocalRedis
from producer.exporter import (
    SECONDS_PER_TOKEN,
    ControlPlaneCollector,
    Reading,
    RedisReader,
    configured_queues,
    queue_labels,
)
from shared.buckets import CONTROL_QUEUE, model_name, queue_name
from shared.celery_app import ASSEMBLE_TASK, SYNTHESIZE_TASK, create_app
from shared.ledger import JobState, Ledger
from shared.schema import SegmentTask, SynthesisParams
from shared.settings import load_settings
from tests.support.prometheus import free_port

MODEL = model_name("piper-onnx", "en_US-joe-medium")


@pytest.fixture(scope="module")
def private_redis() -> Iterator[LocalRedis]:
    """A Redis of its own: the package's observed render keeps using the shared one."""
    server = LocalRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(private_redis: LocalRedis) -> redis.Redis:
    connection = redis.Redis.from_url(private_redis.url)
    connection.flushdb()
    return connection


def _segment(tokens: int, *, age_s: float, length_scale: float = 1.0, bucket: int = 128) -> SegmentTask:
    return SegmentTask(
        job="unit-job",
        indexes=[0],
        chapter=0,
        text="Some words.",
        ids=[1] * tokens,
        voice="en_US-joe-medium",
        engine="piper-onnx",
        params=SynthesisParams(length_scale=length_scale),
        key="a" * 64,
        bucket=bucket,
        enqueued_at=time.time() - age_s,
    )


def _publish(url: str, segment: SegmentTask, *, priority: int | None = None) -> None:
    app = create_app(load_settings(redis_url=url))
    options = {} if priority is None else {"priority": priority}
    app.send_task(
        SYNTHESIZE_TASK,
        kwargs={"segment": segment.model_dump(mode="json")},
        queue=queue_name(MODEL, segment.bucket),
        **options,
    )


def _samples(collector: ControlPlaneCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def _queue(name: str, bucket: str, model: str = MODEL) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, (("bucket", bucket), ("model", model))


def test_depth_work_and_oldest_age_are_read_from_celery_messages_in_every_priority_list(
    client: redis.Redis, private_redis: LocalRedis
) -> None:
    _publish(private_redis.url, _segment(100, age_s=40))
    _publish(private_redis.url, _segment(100, age_s=20, length_scale=2.0))
    _publish(private_redis.url, _segment(60, age_s=10), priority=6)  # a sibling list voxfarm...b128\x06\x166

    samples = _samples(ControlPlaneCollector(RedisReader(client)))

    assert samples[_queue("voxfarm_queue_depth_messages", "128")] == 3
    assert samples[_queue("voxfarm_queue_work_seconds", "128")] == pytest.approx((100 + 200 + 60) * SECONDS_PER_TOKEN)
    assert samples[_queue("voxfarm_queue_oldest_age_seconds", "128")] == pytest.approx(40, abs=3)
    assert samples[("voxfarm_broker_up", ())] == 1


def test_work_is_extrapolated_from_a_bounded_sample_of_the_oldest_messages(
    client: redis.Redis, private_redis: LocalRedis
) -> None:
    for _ in range(12):
        _publish(private_redis.url, _segment(50, age_s=5, bucket=64))

    samples = _samples(ControlPlaneCollector(RedisReader(client, sample=4)))

    assert samples[_queue("voxfarm_queue_depth_messages", "64")] == 12
    assert samples[_queue("voxfarm_queue_work_seconds", "64")] == pytest.approx(12 * 50 * SECONDS_PER_TOKEN)


def test_configured_and_drained_queues_stay_reported_at_zero(client: redis.Redis, private_redis: LocalRedis) -> None:
    settings = load_settings(redis_url=private_redis.url)
    reader = RedisReader(client, known=configured_queues(settings), discover_s=0)
    collector = ControlPlaneCollector(reader, cache_s=0)
    other = model_name("piper-torch", "en_GB-alba-medium")
    create_app(settings).send_task(SYNTHESIZE_TASK, kwargs={"segment": {}}, queue=queue_name(other, 256))
    create_app(settings).send_task(ASSEMBLE_TASK, kwargs={"job": "unit-job"}, queue=CONTROL_QUEUE)

    before = _samples(collector)
    client.delete(queue_name(other, 256))  # consumed: Redis drops the empty list
    after = _samples(collector)

    assert before[_queue("voxfarm_queue_depth_messages", "256", other)] == 1
    assert before[_queue("voxfarm_queue_depth_messages", "control", "control")] == 1
    assert after[_queue("voxfarm_queue_depth_messages", "256", other)] == 0
    for edge in settings.bucket_edges:
        assert after[_queue("voxfarm_queue_depth_messages", str(edge))] == 0
    assert after[_queue("voxfarm_queue_depth_messages", "interactive")] == 0
    # A message that is not a segment counts as waiting but adds no work and no age.
    assert before[_queue("voxfarm_queue_work_seconds", "256", other)] == 0


def test_lists_that_are_not_voxfarm_queues_never_become_label_values(client: redis.Redis) -> None:
    for name in ("voxfarm.dead", "voxfarm.x", "voxfarm.Bad Engine.voice.b32", "voxfarm.piper-onnx.v.b12x", "other.q"):
        client.lpush(name, "{}")

    samples = _samples(ControlPlaneCollector(RedisReader(client)))

    assert not [key for key in samples if key[0] == "voxfarm_queue_depth_messages"]
    assert samples[("voxfarm_dead_letter_queue_messages", ())] == 1
    assert queue_labels("voxfarm.piper-onnx.en_US-joe-medium.b64") == (MODEL, "64")
    assert queue_labels("voxfarm.piper-onnx.en_US-joe-medium.interactive") == (MODEL, "interactive")
    assert queue_labels(CONTROL_QUEUE) == ("control", "control")


def test_in_flight_messages_are_counted_from_kombus_unacked_hash(
    client: redis.Redis, private_redis: LocalRedis
) -> None:
    _publish(private_redis.url, _segment(80, age_s=1))
    _publish(private_redis.url, _segment(80, age_s=1))
    app = create_app(load_settings(redis_url=private_redis.url))

    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(queue_name(MODEL, 128))
        message = queue.get(timeout=5)  # delivered, not acknowledged
        samples = _samples(ControlPlaneCollector(RedisReader(client)))
        message.ack()
        queue.close()

    assert samples[("voxfarm_unacked_messages", ())] == 1
    assert samples[_queue("voxfarm_queue_depth_messages", "128")] == 1


def test_jobs_active_segments_remaining_and_progress_age_come_from_the_ledger(client: redis.Redis) -> None:
    ledger = Ledger(client)
    ledger.create_job("book-one", total=10, reused=[0, 1], meta={"title": "One"})
    ledger.mark_done("book-one", [2])
    ledger.create_job("book-two", total=4, reused=[], meta={"title": "Two"})
    ledger.mark_done("book-two", [0, 1, 2, 3])  # moves to assembling
    ledger.set_state("book-one", JobState.RENDERING)  # as the dispatcher's first push leaves it
    ledger.create_job("book-three", total=3, reused=[0, 1, 2], meta={"title": "Three"})
    ledger.set_state("book-three", JobState.DONE)
    ledger.create_job("book-four", total=5, reused=[], meta={"title": "Four"})  # queued: nothing dispatched yet
    ledger.create_job("book-five", total=6, reused=[], meta={"title": "Five"})
    ledger.set_state("book-five", JobState.PAUSED)
    client.hset("voxfarm:job:book-one:meta", "updated_at", time.time() - 120)

    samples = _samples(ControlPlaneCollector(RedisReader(client)))

    assert samples[("voxfarm_jobs_active", (("state", "rendering"),))] == 1
    assert samples[("voxfarm_jobs_active", (("state", "assembling"),))] == 1
    assert samples[("voxfarm_jobs_active", (("state", "queued"),))] == 1
    assert samples[("voxfarm_jobs_active", (("state", "paused"),))] == 1
    assert samples[("voxfarm_segments_remaining", ())] == 7 + 5, "a paused job's segments wait on purpose"
    assert samples[("voxfarm_job_progress_age_seconds", ())] == pytest.approx(120, abs=5)


def test_scrapes_within_the_cache_period_read_redis_once(client: redis.Redis) -> None:
    class CountingReader(RedisReader):
        reads = 0

        def read(self) -> Reading:
            CountingReader.reads += 1
            return super().read()

    now = [100.0]
    collector = ControlPlaneCollector(CountingReader(client), cache_s=5.0, clock=lambda: now[0])

    for _ in range(10):
        collector.collect()
    now[0] += 5.0
    collector.collect()

    assert CountingReader.reads == 2


def test_an_unreachable_redis_reports_broker_down_and_no_stale_figures() -> None:
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))

    samples = _samples(ControlPlaneCollector(RedisReader(unreachable)))

    assert samples[("voxfarm_broker_up", ())] == 0
    assert samples[("voxfarm_exporter_read_errors_total", ())] == 1
    assert not [name for name, _ in samples if name.startswith(("voxfarm_queue", "voxfarm_segments", "voxfarm_jobs"))]


def test_a_work_unit_counts_the_tokens_of_every_segment_it_carries() -> None:
    from producer.exporter import decode_segment
    from tests.support.raw_messages import celery_body, envelope

    def segment(tokens: int) -> dict[str, object]:
        return {"ids": list(range(tokens)), "enqueued_at": 100.0, "params": {"length_scale": 1.0}}

    queue = "voxfarm.piper-onnx.en_US-joe-medium.b64"
    single = decode_segment(envelope(celery_body({"segment": segment(40)}), queue=queue))
    unit = decode_segment(envelope(celery_body({"unit": [segment(40), segment(30)]}), queue=queue))

    assert single is not None and unit is not None
    assert (single.tokens, unit.tokens) == (40, 70)
    assert unit.work_s == single.work_s * 70 / 40
