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


def test_a_job_ends_failed_when_its_last_segment_to_finish_succeeds_after_another_failed(ledger: Ledger) -> None:
    ledger.create_job("poisoned", total=3, reused=[], meta={"title": "Poisoned"})
    ledger.mark_failed("poisoned", [0], "dead-lettered early", attempts=1)
    ledger.mark_done("poisoned", [1])
    assert ledger.status("poisoned").state == JobState.QUEUED, "one segment is still to come"

    result = ledger.mark_done("poisoned", [2])

    assert not result.completed, "nothing to assemble"
    status = ledger.status("poisoned")
    assert status.state == JobState.FAILED and sorted(status.failed) == [0], "not left waiting for ever"
    ledger.mark_done("poisoned", [2])  # a duplicate mark changes nothing
    assert ledger.status("poisoned").state == JobState.FAILED


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


def test_a_tenant_s_listing_reads_its_own_index_and_forgets_expired_jobs(ledger: Ledger) -> None:
    for job, tenant in (("alpha-1", "alpha"), ("alpha-2", "alpha"), ("beta-1", "beta")):
        ledger.create_job(job, total=1, reused=[], meta={"title": job, "tenant": tenant})
    assert [s.job for s in ledger.tenant_statuses("alpha")] == ["alpha-2", "alpha-1"], "newest first"
    assert [s.job for s in ledger.tenant_statuses("beta")] == ["beta-1"]

    ledger.redis.delete("voxfarm:job:alpha-1:meta")  # what expiry does two weeks after a job finished
    assert [s.job for s in ledger.tenant_statuses("alpha")] == ["alpha-2"]
    assert not ledger.redis.sismember("voxfarm:tenant:alpha:jobs", "alpha-1"), "pruned from the tenant's index"
    assert not ledger.redis.sismember("voxfarm:jobs", "alpha-1"), "and from the set of all jobs"

    ledger.create_job("beta-1", total=1, reused=[], meta={"title": "taken over", "tenant": "alpha"})
    assert "beta-1" in [s.job for s in ledger.tenant_statuses("alpha")]
    assert ledger.tenant_statuses("beta") == [], "an id registered again for another tenant leaves the old index"


def test_jobs_registered_before_the_tenant_index_are_indexed(ledger: Ledger) -> None:
    ledger.create_job("old-1", total=1, reused=[], meta={"title": "Old", "tenant": "gamma"})
    ledger.redis.delete("voxfarm:tenant:gamma:jobs")  # as an older voxfarm left it
    assert ledger.tenant_statuses("gamma") == []
    assert ledger.index_tenants() == 1
    assert [s.job for s in ledger.tenant_statuses("gamma")] == ["old-1"]
