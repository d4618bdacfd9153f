"""The dispatcher's per-job bookkeeping: units in book order, what landed, what a worker handed back."""

from __future__ import annotations

from producer.fairshare import ShareState
from producer.jobwork import JobWork, build_units
from shared.schema import SegmentTask

KEY = "0" * 64


def task(index: int, bucket: int = 32) -> SegmentTask:
    return SegmentTask(
        job="book",
        indexes=[index],
        chapter=0,
        text="x",
        ids=[1, 2, 3],
        voice="en_US-joe-medium",
        engine="piper-onnx",
        key=KEY,
        bucket=bucket,
        enqueued_at=0.0,
    )


def work(per_unit: int = 1) -> JobWork:
    tasks = [("q32", task(0)), ("q64", task(1, 64)), ("q32", task(2)), ("q32", task(3))]
    return JobWork(ShareState("book", "default"), "gen", build_units(tasks, per_unit, lambda t: 1.5))


def test_units_group_consecutive_segments_of_one_queue_and_carry_their_estimate() -> None:
    job = work(per_unit=2)

    assert [[u.indexes for u in units] for units in job.pending.values()] == [[[0, 2], [3]], [[1]]]
    assert job.pending_s == 6.0


def test_the_next_unit_is_the_earliest_in_book_order_among_queues_with_room() -> None:
    job = work()

    first = job.next_unit({"q32": 1, "q64": 1})
    assert first is not None and first.indexes == [0]
    job.take(first)
    after = job.next_unit({"q32": 0, "q64": 1})
    assert after is not None and after.indexes == [1]
    assert job.next_unit({}) is None


def two_units_in_flight() -> JobWork:
    job = work()
    for _ in range(2):
        unit = job.next_unit({"q32": 5})
        assert unit is not None
        job.take(unit)
    return job


def test_settle_forgets_what_landed_and_takes_back_what_a_worker_handed_back() -> None:
    job = two_units_in_flight()
    assert job.in_flight == 2

    job.settle(done={0}, sent={2})  # 0 landed; 2 still with a worker
    assert job.in_flight == 1
    job.settle(done={0}, sent=set())  # 2 handed back (a paused job): owed again, first in line
    assert job.in_flight == 0
    again = job.next_unit({"q32": 1})
    assert again is not None and again.indexes == [2]


def test_settle_judges_only_the_units_it_is_told_of() -> None:
    job = two_units_in_flight()

    job.settle(done={0}, sent=set(), firsts=[0])  # unit 2 was not read: neither done nor handed back
    assert list(job.flight) == [2]
    job.settle(done=set(), sent=set(), firsts=[0, 2])  # 0 is gone already; 2 was handed back
    assert job.in_flight == 0
    again = job.next_unit({"q32": 1})
    assert again is not None and again.indexes == [2]
