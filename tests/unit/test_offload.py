"""Upload processes: a take that passes is checked, encoded and stored there; one that fails comes back unstored."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pytest

from shared.audio import encode_flac
from shared.errors import WorkerFaultError
from shared.quality import DEFAULT_LIMITS
from shared.storage import open_storage
from shared.voices import bundled_voice
from workers.devices import open_device
from workers.engines import create_engine
from workers.engines.base import EngineRequest
from workers.offload import Offload, StorageSpec, Take
from workers.tuning import synthetic_request


@pytest.fixture
def offload(tmp_path: Path) -> Iterator[Offload]:
    pool = Offload(StorageSpec(tmp_path.as_uri()), processes=1)
    pool.warm()
    yield pool
    pool.shutdown()


def _speech() -> tuple[np.ndarray, int]:
    engine = create_engine("bench-standin", bundled_voice(), open_device("cpu").backend)
    request = EngineRequest("c" * 64, synthetic_request(120).ids)
    return np.array(engine.synthesize([request], 128).audio[0]), engine.sample_rate


def test_a_passing_take_is_stored_by_the_pool_as_the_worker_would_store_it(offload: Offload, tmp_path: Path) -> None:
    samples, rate = _speech()

    result = offload.store(Take(samples, rate, 120, 1.0, "segments/v/cc/take.flac"), DEFAULT_LIMITS)

    assert result.report.passed
    stored = open_storage(tmp_path.as_uri()).get_bytes("segments/v/cc/take.flac")
    assert stored == encode_flac(samples, rate) and result.bytes == len(stored)
    assert set(result.cpu_s) == {"quality", "encoding", "storage"} and result.cpu_s["encoding"] > 0


def test_a_failing_take_comes_back_with_its_findings_and_is_not_stored(offload: Offload, tmp_path: Path) -> None:
    silence = np.zeros(22050, dtype=np.float32)

    result = offload.store(Take(silence, 22050, 40, 1.0, "segments/v/dd/silent.flac"), DEFAULT_LIMITS)

    assert not result.report.passed and result.bytes == 0
    assert [f.check for f in result.report.findings] == ["silent"]
    assert not open_storage(tmp_path.as_uri()).exists("segments/v/dd/silent.flac")


def test_a_pool_process_that_dies_hands_the_take_on_and_a_new_pool_takes_the_next(offload: Offload) -> None:
    samples, rate = _speech()
    for pid in list(offload._pool._processes):
        os.kill(pid, signal.SIGKILL)

    with pytest.raises(WorkerFaultError, match="upload process died"):
        for _ in range(20):  # the pool notices the death within a call or two
            offload.store(Take(samples, rate, 120, 1.0, "segments/v/ee/a.flac"), DEFAULT_LIMITS)
    result = offload.store(Take(samples, rate, 120, 1.0, "segments/v/ee/b.flac"), DEFAULT_LIMITS)

    assert result.report.passed and result.bytes > 0


def test_a_share_travels_in_shared_memory_and_only_the_passing_takes_are_stored(tmp_path: Path) -> None:
    samples, rate = _speech()
    silence = np.zeros(22050, dtype=np.float32)
    pool = Offload(StorageSpec(tmp_path.as_uri()), processes=1)
    try:
        share = [
            Take(samples, rate, 120, 1.0, "segments/v/aa/first.flac"),
            Take(silence, rate, 40, 1.0, "segments/v/aa/silent.flac"),
            Take(samples[::-1].copy(), rate, 120, 1.0, "segments/v/aa/second.flac"),
        ]
        results = pool.store_many(share, DEFAULT_LIMITS)
        again = pool.store_many(share[:1], DEFAULT_LIMITS)
        blocks = [block.name for block in pool._blocks._all]
    finally:
        pool.shutdown()

    storage = open_storage(tmp_path.as_uri())
    assert [r.report.passed for r in results] == [True, False, True] and again[0].report.passed
    assert storage.get_bytes("segments/v/aa/first.flac") == encode_flac(samples, rate)
    assert storage.get_bytes("segments/v/aa/second.flac") == encode_flac(samples[::-1].copy(), rate)
    assert not storage.exists("segments/v/aa/silent.flac") and results[1].bytes == 0
    assert len(blocks) == 1, "the second share reused the first one's block"
    with pytest.raises(FileNotFoundError):
        SharedMemory(name=blocks[0])  # removed at shutdown
