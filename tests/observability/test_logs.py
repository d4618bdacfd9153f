"""One segment can be followed through the JSON logs, from submit to storage to assembly."""

from __future__ import annotations

from typing import Any

from tests.observability.live import JOB, LiveRun
from tests.support.logs import records

WORKER_STEPS = (
    "segment received",
    "segment synthesised",
    "segment written to storage",
    "segment marked done in the ledger",
    "segment stored",
)


def _first(entries: list[dict[str, Any]], msg: str, **fields: Any) -> dict[str, Any]:
    found = [e for e in entries if e.get("msg") == msg and all(e.get(k) == v for k, v in fields.items())]
    assert found, f"no {msg!r} line with {fields}"
    return found[0]


def test_a_segment_is_followed_by_job_and_index_from_dispatch_through_a_worker_to_assembly(live: LiveRun) -> None:
    control = records(live.control.log())
    submitted = [e for e in control if e.get("msg") == "segment enqueued" and e.get("job") == JOB]
    workers = [e for worker in live.workers for e in records(worker.log())]

    assert submitted, live.control.log()[-2000:]
    assert all(isinstance(e["segment"], int) and e["key"] for e in submitted)
    enqueued = submitted[-1]
    segment = enqueued["segment"]
    steps = [enqueued] + [_first(workers, msg, job=JOB, segment=segment) for msg in WORKER_STEPS]
    assembled = _first(control, "job assembled", job=JOB)

    assert len({step["pid"] for step in steps[1:]}) == 1, "one worker took the segment from receipt to ledger"
    assert {step.get("key") for step in steps[:4]} == {enqueued["key"]}
    assert steps[1]["worker"].endswith("@test")
    times = [step["ts"] for step in [*steps, assembled]]
    assert times == sorted(times), times


def test_every_json_line_with_a_segment_also_names_its_job(live: LiveRun) -> None:
    lines = [e for worker in live.workers for e in records(worker.log())] + records(live.control.log())

    with_segment = [e for e in lines if "segment" in e]

    assert len(with_segment) >= 5 * len(WORKER_STEPS)
    assert all(e.get("job") for e in with_segment)
