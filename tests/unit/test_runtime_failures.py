"""A message's handler never ends in an unhandled error: Celery would acknowledge the message and drop it.

The runtime runs for real against Redis and local storage; only the engine
is a fake that answers at once (and the Celery task, whose retry is
recorded instead of re-published).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.celery_app import create_app
from shared.dead_letters import list_dead_letters
from shared.errors import BrokerError, EngineError, StorageError, WorkerFaultError
from shared.ledger import Ledger
from shared.quality import DEFAULT_LIMITS
from shared.redis_keys import worker_faults_key
from shared.schema import SegmentTask
from shared.settings import load_settings
from shared.storage import LocalStorage
from workers.batcher import Batcher, BatchPolicy
from workers.engines.base import EngineOutput, EngineRequest
from workers.runner import BatchRunner
from workers.runtime import MAX_WORKER_FAULTS, WorkerRuntime
from workers.telemetry import WorkerIdentity

RATE = 22050
EDGES = (32, 64)


class InstantEngine:
    """Half a second of a tone per request, or an error for a chosen key."""

    name = "piper-onnx"
    sample_rate = RATE
    quality_limits = DEFAULT_LIMITS

    def __init__(self) -> None:
        self.calls: list[int] = []
        """Requests per engine call."""

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        self.calls.append(len(batch))
        t = np.arange(RATE // 2) / RATE
        return EngineOutput([(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32) for _ in batch])

    def canary_request(self) -> EngineRequest:
        return EngineRequest("c" * 64, [1, 2, 3])


class Retried(Exception):
    """What the fake task's retry returns (Celery's raises its own Retry)."""


class FakeTask:
    def __init__(self, retries: int = 0, *, redelivered: bool = False) -> None:
        self.request = type("Request", (), {"retries": retries, "delivery_info": {"redelivered": redelivered}})()
        self.retries: list[float] = []

    def retry(self, exc: BaseException, countdown: float, max_retries: int | None) -> Exception:
        self.retries.append(countdown)
        return Retried(str(exc))


class OutageStorage(LocalStorage):
    """Local storage whose existence checks fail, as S3 does through an outage longer than the short retries."""

    def exists_many(self, paths: Sequence[str]) -> list[bool]:
        raise StorageError("HEAD failed: the storage service is unavailable")


def segment(index: int, tokens: int = 10) -> dict[str, Any]:
    return SegmentTask(
        job="failing-job",
        indexes=[index],
        chapter=0,
        text="A sentence.",
        ids=list(range(1, tokens + 1)),
        voice="en_US-joe-medium",
        engine="piper-onnx",
        key=f"{index:064x}",
        bucket=EDGES[0] if tokens <= EDGES[0] else 1024,
        enqueued_at=time.time(),
    ).model_dump(mode="json")


@pytest.fixture
def ledger(redis_url: str) -> Ledger:
    ledger = Ledger.from_url(redis_url)
    ledger.create_job("failing-job", total=4, reused=[], meta={"title": "Failing"})
    return ledger


def runtime(
    ledger: Ledger, storage: LocalStorage, engine: InstantEngine | None = None, **settings: Any
) -> Iterator[WorkerRuntime]:
    config = load_settings().model_copy(update={"retry_backoff_s": 0.01, **settings})
    batcher: Batcher[SegmentTask] = Batcher(BatchPolicy(max_items=4, max_wait_s=0.01), EDGES)
    runner = BatchRunner(engine or InstantEngine(), batcher, storage, time_limit_s=30)  # type: ignore[arg-type]
    identity = WorkerIdentity("piper-onnx", "en_US-joe-medium", "cpu", "0")
    worker = WorkerRuntime(config, create_app(config), storage, ledger, batcher, runner, identity, lambda _: None, "t")
    runner.start()
    try:
        yield worker
    finally:
        runner.stop()


def test_a_storage_outage_past_the_short_retries_retries_the_message(ledger: Ledger, tmp_path: Path) -> None:
    for worker in runtime(ledger, OutageStorage(tmp_path)):
        task = FakeTask()
        with pytest.raises(Retried, match="unavailable"):
            worker.handle_unit(task, [segment(0), segment(1)])
        assert task.retries, "the message goes back to its queue with a countdown, not acknowledged as done"
        last = FakeTask(retries=worker.settings.max_retries)
        assert worker.handle_unit(last, [segment(0), segment(1)]) == {"status": "unit", "segments": 2}
    failed = ledger.status("failing-job").failed
    assert sorted(failed) == [0, 1] and "StorageError" in failed[0]["reason"], "given up, and the job says why"


def test_a_lost_ledger_mark_retries_the_message_and_keeps_what_is_stored(ledger: Ledger, tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for worker in runtime(ledger, storage):
        real_mark = ledger.mark_done

        def redis_down(job: str, indexes: Sequence[int]) -> Any:
            raise BrokerError("cannot mark segments done: Redis is down")

        ledger.mark_done = redis_down  # type: ignore[method-assign]
        with pytest.raises(Retried, match="Redis is down"):
            worker.handle_unit(FakeTask(), [segment(2), segment(3)])
        assert len(list(storage.list("segments"))) == 2, "the audio is stored before the ledger is marked"
        ledger.mark_done = real_mark  # type: ignore[method-assign]
        results = worker.handle_unit(FakeTask(retries=1), [segment(2), segment(3)])
    assert results == {"status": "unit", "segments": 2}
    assert ledger.status("failing-job").done == 2, "the retry finds the audio stored and marks it done"


def test_a_segment_longer_than_the_worker_s_buckets_is_dead_lettered(ledger: Ledger, tmp_path: Path) -> None:
    for worker in runtime(ledger, LocalStorage(tmp_path)):
        worker.handle_unit(FakeTask(), [segment(0), segment(1, tokens=600)])
    letters = list_dead_letters(ledger.redis)
    assert any("VOXFARM_BUCKET_EDGES" in letter["reason"] for letter in letters)
    assert ledger.status("failing-job").done == 1, "the other segment of the unit is rendered"


def test_only_a_segment_in_the_failing_engine_call_counts_towards_poison(ledger: Ledger, tmp_path: Path) -> None:
    for worker in runtime(ledger, LocalStorage(tmp_path)):
        bystander, culprit = SegmentTask.model_validate(segment(0)), SegmentTask.model_validate(segment(1))
        handed: list[WorkerFaultError] = []
        for _ in range(5):  # queued behind a hung call, or stopped by a shutdown: handed on, never blamed
            outcome = worker._hand_on(bystander, WorkerFaultError("worker is stopping"), 1, handed)
            assert outcome["status"] == "handed_on"
        outcomes = [
            worker._hand_on(culprit, WorkerFaultError("device failed", suspect=True), 1, handed)["status"]
            for _ in range(3)
        ]
    assert outcomes == ["handed_on", "handed_on", "failed"], "the third worker it takes down dead-letters it"
    assert sorted(ledger.status("failing-job").failed) == [1]


def test_a_redelivered_unit_renders_each_suspect_alone_and_never_again_one_already_dead_lettered(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A unit comes back whole after an engine call took a worker down: only the culprit may fail again."""
    unit = [segment(index) for index in range(4)]
    ledger.redis.set(worker_faults_key(unit[1]["key"]), 1)  # was in the call that took a worker down
    ledger.redis.set(worker_faults_key(unit[2]["key"]), MAX_WORKER_FAULTS)  # dead-lettered by that delivery
    engine = InstantEngine()
    for worker in runtime(ledger, LocalStorage(tmp_path), engine):
        assert worker.handle_unit(FakeTask(redelivered=True), unit) == {"status": "unit", "segments": 4}
    assert sorted(engine.calls) == [1, 2], "the suspect in a call of its own, its two unsuspected mates together"
    status = ledger.status("failing-job")
    assert status.done == 3 and sorted(status.failed) == [2], "the dead-lettered one is not rendered again"
    assert list_dead_letters(ledger.redis) == [], "nor dead-lettered twice"


def test_fault_counts_are_not_read_for_a_first_delivery(ledger: Ledger, tmp_path: Path) -> None:
    unit = [segment(index) for index in range(2)]
    ledger.redis.set(worker_faults_key(unit[0]["key"]), 1)  # left by an earlier job with the same sentence
    engine = InstantEngine()
    for worker in runtime(ledger, LocalStorage(tmp_path), engine):
        worker.handle_unit(FakeTask(), unit)
    assert engine.calls == [2] and ledger.status("failing-job").done == 2


def test_a_bug_after_the_engine_call_fails_the_batch_and_the_runner_goes_on(tmp_path: Path) -> None:
    batcher: Batcher[SegmentTask] = Batcher(BatchPolicy(max_items=1, max_wait_s=0.01), EDGES)
    broken: list[int] = []

    def observer(record: object) -> None:
        if type(record).__name__ == "BatchRecord" and not broken:
            broken.append(1)
            raise KeyError("a bug in the telemetry of a batch")

    runner = BatchRunner(InstantEngine(), batcher, LocalStorage(tmp_path), time_limit_s=30, observer=observer)  # type: ignore[arg-type]
    runner.start()
    try:
        first = batcher.submit(SegmentTask.model_validate(segment(0)), 10)
        with pytest.raises(EngineError, match="KeyError"):
            first.result(timeout=10)  # answered (to be retried), not left waiting for ever
        second = batcher.submit(SegmentTask.model_validate(segment(1)), 10)
        assert second.result(timeout=10).key == f"{1:064x}", "the runner thread is still there"
    finally:
        runner.stop()
