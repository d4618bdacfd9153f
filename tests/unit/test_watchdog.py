"""The engine-call watchdog: a call past its limit is reported once, one in time never is; a hung card stops work."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from shared.errors import DeviceError, EngineError, WorkerFaultError
from shared.schema import SegmentTask
from shared.storage import open_storage
from workers.batcher import Batcher, BatchPolicy
from workers.engines.base import Engine, EngineOutput, EngineRequest
from workers.runner import BatchRunner
from workers.watchdog import Watchdog


def test_a_call_past_its_limit_is_reported_with_its_subject() -> None:
    fired: list[str] = []
    done = threading.Event()
    watchdog: Watchdog[str] = Watchdog(0.05, lambda subject: (fired.append(subject), done.set()))
    watchdog.arm("batch 1")
    assert done.wait(5.0)
    time.sleep(0.1)
    assert fired == ["batch 1"]


def test_calls_that_end_in_time_are_never_reported_and_one_thread_watches_them_all() -> None:
    fired: list[int] = []
    watchdog: Watchdog[int] = Watchdog(0.2, fired.append)
    threads_before = threading.active_count()
    for call in range(200):
        watchdog.arm(call)
        watchdog.disarm()
    assert threading.active_count() <= threads_before + 1
    watchdog.arm(200)
    time.sleep(0.05)
    watchdog.disarm()
    time.sleep(0.3)
    assert fired == []


def test_an_idle_watchdog_wakes_for_the_next_call() -> None:
    fired: list[str] = []
    done = threading.Event()
    watchdog: Watchdog[str] = Watchdog(0.05, lambda subject: (fired.append(subject), done.set()))
    watchdog.arm("quick")
    watchdog.disarm()
    time.sleep(0.2)  # the watcher is now waiting with nothing armed
    watchdog.arm("stuck")
    assert done.wait(5.0)
    assert fired == ["stuck"]


class HungEngine(Engine):
    """An engine whose call never returns on its own: the card hung."""

    name = "piper-onnx"
    sample_rate = 22050

    def __init__(self) -> None:
        self.release = threading.Event()

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        self.release.wait(30)
        return EngineOutput(audio=[np.zeros(100, dtype=np.float32) for _ in batch])


def _hung_segment(engine: HungEngine, tmp_path: Path, *, batch: int) -> tuple[BatchRunner, list[BaseException]]:
    """A runner on ``engine`` given one segment, which fails over on the time limit; what stopped it."""
    batcher: Batcher[SegmentTask] = Batcher(BatchPolicy(max_items=batch, max_wait_s=0.01), [32, 64, 128])
    stopped: list[BaseException] = []
    runner = BatchRunner(
        engine, batcher, open_storage((tmp_path / "store").as_uri()), time_limit_s=0.2, on_fatal=stopped.append
    )
    runner.start()
    try:
        future = batcher.submit(_task(), 10)
        with pytest.raises(WorkerFaultError, match="time limit"):
            future.result(timeout=10)
    finally:
        engine.release.set()
        runner.stop()
    return runner, stopped


def test_a_hung_engine_call_fails_its_batch_over_to_other_workers_and_stops_the_runner(tmp_path: Path) -> None:
    runner, stopped = _hung_segment(HungEngine(), tmp_path, batch=4)
    assert isinstance(runner.fatal, DeviceError) and stopped == [runner.fatal]
    assert runner.batcher.closed


class FailsThenHangs(HungEngine):
    """One segment fails alone; the known-good canary request that decides whom to blame then hangs the card."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def synthesize(self, batch: Sequence[EngineRequest], pad_to: int) -> EngineOutput:
        self.calls += 1
        if self.calls == 1:
            raise EngineError("this sentence breaks the voice")
        return super().synthesize(batch, pad_to)


def test_a_card_that_hangs_on_the_canary_request_stops_the_runner(tmp_path: Path) -> None:
    engine = FailsThenHangs()
    runner, stopped = _hung_segment(engine, tmp_path, batch=1)
    assert engine.calls == 2, "the canary was the call that hung"
    assert isinstance(runner.fatal, DeviceError) and stopped == [runner.fatal]


def _task() -> SegmentTask:
    return SegmentTask(
        job="hung-job",
        indexes=[0],
        chapter=0,
        text="x",
        ids=list(range(10)),
        voice="en_US-joe-medium",
        engine="piper-onnx",
        key="cd" * 32,
        bucket=32,
        enqueued_at=time.time(),
    )


def test_a_runner_stopped_after_a_hang_does_not_wait_for_the_hung_call_and_says_it_is_stuck(tmp_path: Path) -> None:
    engine = HungEngine()
    batcher: Batcher[SegmentTask] = Batcher(BatchPolicy(max_items=1, max_wait_s=0.01), [32, 64, 128])
    runner = BatchRunner(engine, batcher, open_storage((tmp_path / "store").as_uri()), time_limit_s=0.2)
    runner.start()
    try:
        with pytest.raises(WorkerFaultError, match="time limit"):
            batcher.submit(_task(), 10).result(timeout=10)
        runner.stop(timeout=60)  # returns while the call is still held: waiting would keep the worker up
        assert runner.stuck, "the worker must know not to close the engine under the hung call"
    finally:
        engine.release.set()
    deadline = time.monotonic() + 10
    while runner.stuck and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runner.stuck, "once the call returns the runner is no longer stuck"
