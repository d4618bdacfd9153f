"""Operations that change the same stored document at once all keep their change (real Redis, local storage)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import redis

import shared.locks
from producer.submit import SUBMISSION_FILE, read_submission, update_submission
from producer.tenants import TENANTS_FILE, read_tenants, set_tenant, stored_tenants
from shared.errors import BrokerError
from shared.keys import job_dir
from shared.redis_keys import document_lock_key
from shared.storage import LocalStorage

CHANGES = 12


def _all_at_once(changes: list[Callable[[], object]]) -> None:
    barrier = threading.Barrier(len(changes))
    errors: list[Exception] = []

    def run(change: Callable[[], object]) -> None:
        barrier.wait()
        try:
            change()
        except Exception as exc:  # noqa: BLE001 - reported below, from the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(change,)) for change in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_operations_on_one_job_at_once_keep_every_field_of_its_submission(redis_url: str, tmp_path: Path) -> None:
    storage, client, job = LocalStorage(tmp_path), redis.Redis.from_url(redis_url), "contested"
    storage.put_bytes(f"{job_dir(job)}/{SUBMISSION_FILE}", b'{"reused": 3}')
    fields = [f"operation{n}" for n in range(CHANGES)]

    _all_at_once([partial(update_submission, storage, client, job, **{field: 1}) for field in fields])

    assert read_submission(storage, job) == {"reused": 3, **{field: 1 for field in fields}}


def test_tenants_set_at_once_are_all_kept_in_storage_and_redis(redis_url: str, tmp_path: Path) -> None:
    storage, client = LocalStorage(tmp_path), redis.Redis.from_url(redis_url)
    names = [f"tenant-{n}" for n in range(CHANGES)]

    _all_at_once([partial(set_tenant, client, storage, name, weight=2.0, quota=None) for name in names])

    assert sorted(stored_tenants(storage)) == sorted(read_tenants(client)) == sorted(names)


def test_a_change_that_waits_too_long_for_another_says_to_try_again(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, client = LocalStorage(tmp_path), redis.Redis.from_url(redis_url)
    monkeypatch.setattr(shared.locks, "WAIT_S", 0.2)
    held = client.lock(document_lock_key(TENANTS_FILE), timeout=30)
    assert held.acquire()
    try:
        with pytest.raises(BrokerError, match=r"held by another change for 0\.2 s; try again"):
            set_tenant(client, storage, "late", weight=2.0, quota=None)
    finally:
        held.release()

    assert "late" not in stored_tenants(storage) and "late" not in read_tenants(client)
    assert set_tenant(client, storage, "late", weight=2.0, quota=None).weight == 2.0
