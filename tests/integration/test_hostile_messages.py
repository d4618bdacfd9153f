"""Malformed, oversized and hostile messages pushed straight into Redis: rejected with a reason, no crash.

Each message is dead-lettered (or refused by Celery before it reaches our
code), nothing is written outside the storage prefix, and the same worker
then renders a normal book.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.buckets import queue_name
from shared.dead_letters import list_dead_letters
from tests.support.books import write_book
from tests.support.logs import JSON_LOGS, stored_keys
from tests.support.processes import FarmProcesses, wait_for_state
from tests.support.raw_messages import celery_body, envelope, pickle_body, push, tampered

QUEUE = queue_name("piper-onnx.en_US-joe-medium", 64)


def valid_segment(**changes: Any) -> dict[str, Any]:
    segment: dict[str, Any] = {
        "v": 1,
        "job": "hostile-job",
        "indexes": [0],
        "chapter": 0,
        "text": "Hello there.",
        "ids": [1, 0, 20, 0, 59, 0, 24, 0, 27, 0, 2],
        "voice": "en_US-joe-medium",
        "engine": "piper-onnx",
        "params": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8, "speaker": None},
        "key": "ab" * 32,
        "bucket": 64,
        "enqueued_at": time.time(),
        "priority": "bulk",
    }
    segment.update(changes)
    return segment


CASES: dict[str, tuple[bytes, str]] = {
    "missing fields": (celery_body({"segment": {"job": "x"}}), "invalid segment message"),
    "wrong types": (celery_body({"segment": valid_segment(ids="not a list")}), "ids"),
    "negative index": (celery_body({"segment": valid_segment(indexes=[-1])}), "indexes"),
    "traversal job id": (celery_body({"segment": valid_segment(job="../../etc")}), "job"),
    "shell job id": (celery_body({"segment": valid_segment(job="a;rm -rf /")}), "job"),
    "traversal voice": (celery_body({"segment": valid_segment(voice="../../x")}), "voice"),
    "bad key": (celery_body({"segment": valid_segment(key="../" * 21 + "a")}), "key"),
    "too many tokens for the bucket": (celery_body({"segment": valid_segment(ids=[1] * 100)}), "bucket"),
    "oversized": (
        celery_body({"segment": valid_segment(text="x" * 3000, ids=[1] * 60, pad="y" * 70000)}),
        "exceeds the limit",
    ),
    "unknown extra field": (celery_body({"segment": valid_segment(extra="boom")}), "extra"),
    "not a segment at all": (celery_body({"segment": "just a string"}), "invalid segment message"),
    "positional arguments": (celery_body({}, args=["a", "b"]), "invalid segment message"),
    "misrouted voice": (celery_body({"segment": valid_segment(voice="en_GB-other-low")}), "routing"),
    "unsupported version": (celery_body({"segment": valid_segment(v=99)}), "v"),
}


UNREADABLE_ENVELOPES: dict[str, tuple[str, str, Any]] = {
    # Each passed kombu's JSON decoding; each crashed the consumer, and those already taken as unacked came back
    # to crash the next worker too.
    "a body that is not base64": ("", "body", "!!! not base64 !!!"),
    "an unknown body encoding": ("properties", "body_encoding", "rot13"),
    "no delivery tag": ("properties", "delivery_tag", None),
    "a time limit that is not numbers": ("headers", "timelimit", "x"),
    "stamped headers that are not a list": ("headers", "stamped_headers", 5),
    "retries that are not a number": ("headers", "retries", "abc"),
}


@pytest.fixture
def broker(farm_env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(farm_env["VOXFARM_REDIS_URL"])


def test_hostile_messages_are_dead_lettered_with_a_reason_and_the_worker_keeps_working(
    farm: FarmProcesses, farm_env: dict[str, str], broker: redis.Redis, tmp_path: Path
) -> None:
    worker = farm.worker("cpu:0")
    marker = tmp_path / "pwned"
    for body, _reason in CASES.values():
        push(broker, QUEUE, envelope(body, queue=QUEUE))
    push(broker, QUEUE, envelope(pickle_body(str(marker)), queue=QUEUE, content_type="application/x-python-serialize"))
    push(broker, QUEUE, b"\x00\xffnot json at all")
    push(broker, QUEUE, envelope(b"{not json", queue=QUEUE))
    push(broker, QUEUE, envelope(celery_body({"segment": valid_segment()}), queue=QUEUE, task="os.system"))
    for part, field, value in UNREADABLE_ENVELOPES.values():
        valid = envelope(celery_body({"segment": valid_segment()}), queue=QUEUE)
        push(broker, QUEUE, tampered(valid, part, field, value))

    # And the raw bytes that are not a broker message at all.
    expected_letters = len(CASES) + len(UNREADABLE_ENVELOPES) + 1
    deadline = time.monotonic() + 60
    while len(list_dead_letters(broker, 1000)) < expected_letters and time.monotonic() < deadline:
        time.sleep(0.2)
    letters = list_dead_letters(broker, 1000)
    reasons = [entry["reason"] for entry in letters]
    for name, (_body, expected) in CASES.items():
        assert any(expected.lower() in reason.lower() for reason in reasons), (name, reasons)
    unreadable = [reason for reason in reasons if "unreadable broker message" in reason]
    assert len(unreadable) == len(UNREADABLE_ENVELOPES) + 1, reasons
    assert len(letters) == expected_letters

    # Celery itself refuses pickle, undecodable bodies and unknown tasks, and says so in the log.
    deadline = time.monotonic() + 20
    while broker.llen(QUEUE) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    log = worker.log().lower()
    assert "pickle" in log and "unregistered task" in log
    assert not marker.exists(), "a pickle payload was deserialised"
    assert worker.alive(), worker.log()[-3000:]
    assert broker.llen(QUEUE) == 0

    farm.control()
    result = farm.cli("submit", str(write_book(tmp_path)), "--json")
    job = json.loads(result.stdout)["job"]
    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], job, {"done"}, 240) == "done"
    assert worker.alive()


def test_a_poison_segment_is_retried_then_dead_lettered_and_reported_in_status(
    farm: FarmProcesses, farm_env: dict[str, str], broker: redis.Redis
) -> None:
    farm.worker("cpu:0", extra_env={"VOXFARM_MAX_RETRIES": "1", "VOXFARM_RETRY_BACKOFF_S": "0.2"})
    from shared.ledger import Ledger

    Ledger(broker).create_job("poison-job", total=1, reused=[], meta={"title": "Poison"})
    poison = valid_segment(job="poison-job", ids=[1, 0, 60000, 0, 2])  # a token id the voice does not have
    push(broker, QUEUE, envelope(celery_body({"segment": poison}), queue=QUEUE))

    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], "poison-job", {"failed"}, 60) == "failed"
    status = farm.cli("status", "poison-job", "--json")
    report = json.loads(status.stdout)
    assert report["segments_failed"] == 1
    assert "0" in report["failures"] and report["failures"]["0"]["attempts"] == 2
    letters = list_dead_letters(broker)
    assert letters and letters[0]["segment"]["job"] == "poison-job"


def test_a_work_unit_stores_its_good_segments_once_and_gives_up_only_its_bad_ones(
    farm: FarmProcesses, farm_env: dict[str, str], broker: redis.Redis
) -> None:
    worker = farm.worker("cpu:0", extra_env={**JSON_LOGS, "VOXFARM_MAX_RETRIES": "1", "VOXFARM_RETRY_BACKOFF_S": "0.2"})
    from shared.ledger import Ledger

    Ledger(broker).create_job("unit-job", total=2, reused=[], meta={"title": "Unit"})
    good = valid_segment(job="unit-job", indexes=[0], key="cd" * 32)
    poison = valid_segment(job="unit-job", indexes=[1], key="ef" * 32, ids=[1, 0, 60000, 0, 2])
    unit = [good, poison, {"job": "not a segment"}]
    push(broker, QUEUE, envelope(celery_body({"unit": unit}), queue=QUEUE))

    assert wait_for_state(farm_env["VOXFARM_REDIS_URL"], "unit-job", {"failed"}, 60) == "failed"
    report = json.loads(farm.cli("status", "unit-job", "--json").stdout)
    assert report["segments_done"] == 1 and report["segments_failed"] == 1
    assert report["failures"]["1"]["attempts"] == 2, "the unit was retried once, then its poison given up"
    # The retry found the good segment stored: rendered once, then acknowledged as already there.
    assert stored_keys([worker.log()]) == [good["key"]]
    assert stored_keys([worker.log()], status="exists") == [good["key"]]
    letters = list_dead_letters(broker)
    assert any(letter["segment"] == {"job": "not a segment"} for letter in letters)
    assert [letter["segment"].get("key") for letter in letters].count(poison["key"]) == 1
