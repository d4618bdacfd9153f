"""The dispatcher's only write to the queues: fenced, atomic, in one Lua script.

Messages are serialised exactly as kombu would push them (Celery builds
them; a capturing channel keeps the bytes instead of sending them), and
one script then checks that the lease still holds the dispatcher's
``<holder>|<token>``, skips jobs that are no longer queued or rendering
(paused or cancelled since the cycle read them), pushes the rest, records
their indexes as sent in the ledger, moves ``queued`` jobs to ``rendering``
and counts the dispatched audio seconds per tenant and priority. A replica
that lost its lease writes nothing at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from kombu.messaging import Producer
from kombu.utils.json import dumps

from shared.celery_app import SYNTHESIZE_TASK
from shared.errors import BrokerError
from shared.redis_keys import SCHED_DISPATCHED, SCHED_LEASE, job_key

#: KEYS: lease, dispatched, then meta/sent per job, then the queues.
#: ARGV: lease value, now, jobs, queues, then per message: queue#, job#, payload, stat field, seconds, head (1: next
#: to be taken, RPUSH; 0: last, LPUSH), n, indexes...
#: Returns the number of messages pushed, or -1 when the lease is not (or no longer) ours.
_PUSH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local now, njobs = ARGV[2], tonumber(ARGV[3])
local allowed = {}
for j = 1, njobs do
  local state = redis.call('HGET', KEYS[2 + 2 * j - 1], 'state')
  allowed[j] = (state == 'queued' or state == 'rendering')
end
local pushed, i = 0, 5
while i <= #ARGV do
  local q, j, payload, field, seconds, head, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2],
    ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])
  if allowed[j] then
    if head == '1' then
      redis.call('RPUSH', KEYS[2 + 2 * njobs + q], payload)
    else
      redis.call('LPUSH', KEYS[2 + 2 * njobs + q], payload)
    end
    for k = 1, n do redis.call('HSET', KEYS[2 + 2 * j], ARGV[i + 6 + k], now) end
    redis.call('HINCRBYFLOAT', KEYS[2], field, seconds)
    pushed = pushed + 1
  end
  i = i + 7 + n
end
for j = 1, njobs do
  if allowed[j] and redis.call('HGET', KEYS[2 + 2 * j - 1], 'state') == 'queued' then
    redis.call('HSET', KEYS[2 + 2 * j - 1], 'state', 'rendering', 'updated_at', now)
  end
end
return pushed
"""


@dataclass(frozen=True)
class Outgoing:
    """One message ready to push."""

    job: str
    queue_key: str
    payload: str
    indexes: Sequence[int]
    stat_field: str
    seconds: float
    key: str = ""
    """Content key of the first segment (for the logs)."""
    head: bool = False
    """Put at the head of the queue (taken next): a new job's first segment, so its first audio comes soon."""


class MessageCapture:
    """Serialises Celery task messages to the exact bytes kombu's Redis transport would LPUSH."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.connection = app.connection_for_write()
        self.channel: Any = self.connection.default_channel
        self._captured: list[tuple[str, str]] = []
        channel = self.channel

        def _put(queue: str, message: dict[str, Any], **kwargs: Any) -> None:
            priority = channel._get_message_priority(message, reverse=False)
            self._captured.append((channel._q_for_pri(queue, priority), dumps(message)))

        channel._put = _put
        self.producer = Producer(channel)

    def render(self, queue: str, kwargs: dict[str, Any], options: dict[str, str]) -> tuple[str, str]:
        """(the Redis list key, the envelope) of one synthesis message for ``queue``."""
        self.app.send_task(SYNTHESIZE_TASK, kwargs=kwargs, queue=queue, producer=self.producer, **options)
        return self._captured.pop()

    def close(self) -> None:
        self.connection.release()


class FencedPush:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = client.register_script(_PUSH)

    def push(self, lease_value: str, outgoing: Sequence[Outgoing], now: float) -> int:
        """Push every message whose job may still be dispatched; -1 when fenced out."""
        if not outgoing:
            return 0
        jobs: dict[str, int] = {}
        queues: dict[str, int] = {}
        records: list[str] = []
        for message in outgoing:
            j = jobs.setdefault(message.job, len(jobs) + 1)
            q = queues.setdefault(message.queue_key, len(queues) + 1)
            records += [str(q), str(j), message.payload, message.stat_field, f"{message.seconds:.3f}"]
            records.append("1" if message.head else "0")
            records += [str(len(message.indexes)), *(str(i) for i in message.indexes)]
        keys = [SCHED_LEASE, SCHED_DISPATCHED]
        for job in jobs:
            keys += [job_key(job, "meta"), job_key(job, "sent")]
        keys += list(queues)
        try:
            return int(self._script(keys=keys, args=[lease_value, repr(now), len(jobs), len(queues), *records]))
        except redis.RedisError as exc:
            raise BrokerError(f"cannot dispatch: {exc}") from exc
