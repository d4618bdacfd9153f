"""The job ledger on a real Redis: creation, marks, atomic completion, failures."""

from __future__ import annotations

import threading

import pytest
import redis

from shared.errors import NotFoundError
from shared.ledger import JobState, Ledger


@pytest.fixture
def ledger(redis_url: str) -> Ledger:
    return Ledger(redis.Redis.from_url(redis_url))


def test_reused_segments_count_as_done_at_creation(ledger: Ledger) -> None:
    ledger.create_job("book-1", total=5, reused=[0, 3], meta={"title": "Book"})
    status = ledger.status("book-1")
    assert (status.total, status.done, status.reused, status.state) == (5, 2, 2, "queued")


def test_a_fully_reused_job_completes_at_creation(ledger: Ledger) -> None:
    result = ledger.create_job("book-2", total=2, reused=[0, 1], meta={"title": "Book"})
    assert result.completed
    assert ledger.status("book-2").state == JobState.ASSEMBLING


def test_exactly_one_of_many_concurrent_final_marks_completes_the_job(ledger: Ledger, redis_url: str) -> None:
    total = 200
    ledger.create_job("race", total=total, reused=[], meta={"title": "Race"})
    completions: list[bool] = []
    lock = threading.Lock()

    def mark(indexes: range) -> None:
        own = Ledger(redis.Redis.from_url(redis_url))
        for index in indexes:
            result = own.mark_done("race", [index])
            with lock:
                completions.append(result.completed)

    # Every index is marked twice, by different threads (duplicate deliveries).
    threads = [threading.Thread(target=mark, args=(range(i, total, 4),)) for i in range(4)]
    threads += [threading.Thread(target=mark, args=(range(i, total, 4),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert completions.count(True) == 1
    status = ledger.status("race")
    assert status.done == total and status.state == JobState.ASSEMBLING


def test_failures_are_recorded_with_reason_and_cleared_by_a_later_success(ledger: Ledger) -> None:
    ledger.create_job("flaky", total=2, reused=[], meta={"title": "Flaky"})
    ledger.mark_done("flaky", [0])
    assert ledger.mark_failed("flaky", [1], "engine exploded", attempts=4)

    status = ledger.status("flaky")
    assert status.state == JobState.FAILED
    assert status.failed[1]["reason"] == "engine exploded"

    result = ledger.mark_done("flaky", [1])
    assert result.completed
    status = ledger.status("flaky")
    assert status.failed == {} and status.state == JobState.ASSEMBLING


def test_a_failure_after_success_does_not_undo_it(ledger: Ledger) -> None:
    ledger.create_job("dup", total=1, reused=[], meta={"title": "Dup"})
    ledger.mark_done("dup", [0])
    assert not ledger.mark_failed("dup", [0], "late duplicate failed", attempts=1)
    assert ledger.status("dup").failed == {}


def test_marks_for_an_unknown_job_are_reported_not_invented(ledger: Ledger) -> None:
    result = ledger.mark_done("ghost", [0])
    assert not result.known and not result.completed
    assert not ledger.exists("ghost")
    with pytest.raises(NotFoundError, match="ghost"):
        ledger.status("ghost")
