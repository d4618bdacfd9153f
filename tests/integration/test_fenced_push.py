"""The dispatcher's fenced push on a real Redis: chunks, long index lists, paused jobs, a stale lease."""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from producer.fenced_push import CHUNK, FencedPush, Outgoing
from shared.redis_keys import SCHED_DISPATCHED, SCHED_LEASE, job_key


def prepare(client: redis.Redis, **states: str) -> FencedPush:
    client.set(SCHED_LEASE, "me|3")
    for job, state in states.items():
        client.hset(job_key(job, "meta"), "state", state)
    return FencedPush(client)


def test_a_book_larger_than_a_chunk_is_pushed_whole_and_every_index_marked_sent(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pusher = prepare(client, a="queued")
    outgoing = [Outgoing("a", "q.b64" if i % 2 else "q.b32", f"m{i}", [i], "t|50", 0.5) for i in range(2 * CHUNK + 7)]

    assert pusher.push("me|3", outgoing, time.time()) == len(outgoing)

    assert client.llen("q.b64") + client.llen("q.b32") == len(outgoing)
    assert client.lrange("q.b32", -2, -1) == [b"m2", b"m0"], "LPUSH order: the first pushed is taken first"
    assert client.hlen(job_key("a", "sent")) == len(outgoing)
    assert float(client.hget(SCHED_DISPATCHED, "t|50") or 0) == len(outgoing) * 0.5
    assert client.hget(job_key("a", "meta"), "state") == b"rendering"


def test_a_sentence_repeated_ten_thousand_times_marks_every_index_it_stands_at(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pusher = prepare(client, a="rendering")

    assert pusher.push("me|3", [Outgoing("a", "q.b32", "m", list(range(10_000)), "t|50", 1.0, head=True)], 1.0) == 1

    assert client.hlen(job_key("a", "sent")) == 10_000
    assert client.lrange("q.b32", 0, -1) == [b"m"]


def test_a_paused_job_is_skipped_and_a_stale_lease_pushes_nothing(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    pusher = prepare(client, a="queued", b="paused")
    outgoing = [Outgoing("a", "q.b32", "ma", [0], "t|50", 1.0), Outgoing("b", "q.b32", "mb", [0], "t|50", 1.0)]

    assert pusher.push("me|2", outgoing, 1.0) == -1
    assert client.llen("q.b32") == 0 and not client.exists(job_key("a", "sent"))

    assert pusher.push("me|3", outgoing, 1.0) == 1
    assert client.lrange("q.b32", 0, -1) == [b"ma"]
    assert not client.exists(job_key("b", "sent"))


class LeaseLostAfterFirstChunk(FencedPush):
    """The lease moves to another replica between two chunks of one push (this one was killed or cut off)."""

    def _push_chunk(self, lease_value: str, outgoing: Sequence[Outgoing], now: float) -> int:
        pushed = super()._push_chunk(lease_value, outgoing, now)
        self.client.set(SCHED_LEASE, "other|4")
        return pushed


def test_a_push_fenced_out_between_chunks_keeps_what_it_pushed_marked_and_writes_nothing_after(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prepare(client, a="queued")
    pusher = LeaseLostAfterFirstChunk(client)
    outgoing = [Outgoing("a", "q.b32", f"m{i}", [i], "t|50", 1.0) for i in range(2 * CHUNK + 7)]

    assert pusher.push("me|3", outgoing, 1.0) == -1

    assert client.llen("q.b32") == CHUNK
    sent = {int(i) for i in client.hkeys(job_key("a", "sent"))}
    assert sent == set(range(CHUNK)), "what was pushed is marked sent (the next holder skips it), nothing else"
